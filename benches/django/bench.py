"""Django's Signal.send on the scenarios of benches/dispatch.rs, with the ratios to the Rust
figures of the last `cargo bench --bench dispatch` when target/criterion holds them.

    benches/django/run.sh          # makes a virtual environment, installs Django, runs this

Every receiver is a distinct function object connected with weak=False, as Sentry's are;
senders are small ints (Django keys them by id()). Each figure is the median over several
repeats of the per-send time, in nanoseconds.
"""

import json
import pathlib
import statistics
import sys
import timeit

import django
from django.dispatch import Signal

REPEATS = 7


def receiver(k):
    def receive(sender, **kwargs):
        return kwargs["x"] + k

    return receive


def per_send_ns(signal, sender):
    def send():
        signal.send(sender, x=7)

    timer = timeit.Timer(send)
    number, _ = timer.autorange()
    return statistics.median(t / number * 1e9 for t in timer.repeat(REPEATS, number))


def with_receivers(n, sender=None):
    signal = Signal()
    for k in range(n):
        signal.connect(receiver(k), sender=sender, weak=False)
    return signal


def scenarios():
    results = {}
    for n in (1, 10, 100):
        results[f"send/{n}"] = per_send_ns(with_receivers(n), 1)
    results["no_receivers"] = per_send_ns(Signal(), 1)
    others = Signal()
    for k in range(10):
        others.connect(receiver(k), sender=100 + k, weak=False)
    results["other_senders_only"] = per_send_ns(others, 1)
    spread = Signal()
    for sender in range(100):
        for k in range(10):
            spread.connect(receiver(k), sender=sender, weak=False)
    assert len(spread._live_receivers(42)[0]) == 10
    results["10_of_1000_over_100_senders"] = per_send_ns(spread, 42)
    return results


# Django scenario -> the benches/dispatch.rs benchmark it is compared with.
RUST = {
    "send/1": "send/emit/1",
    "send/10": "send/emit/10",
    "send/100": "send/emit/100",
    "no_receivers": "filter/no_receivers",
    "other_senders_only": "filter/other_senders_only",
    "10_of_1000_over_100_senders": "filter/10_of_1000_over_100_senders",
}


def rust_median(root, name):
    estimates = root / name / "new" / "estimates.json"
    if not estimates.exists():
        return None
    return json.loads(estimates.read_text())["median"]["point_estimate"]


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    print(f"Django {django.get_version()} on Python {sys.version.split()[0]}")
    print(f"{'scenario':32} {'django ns':>12} {'signals ns':>12} {'django / signals':>18}")
    for scenario, django_ns in scenarios().items():
        rust_ns = rust_median(root, RUST[scenario])
        if rust_ns is None:
            print(f"{scenario:32} {django_ns:12.1f} {'-':>12} {'-':>18}")
        else:
            ratio = django_ns / rust_ns
            print(f"{scenario:32} {django_ns:12.1f} {rust_ns:12.1f} {ratio:17.0f}x")


if __name__ == "__main__":
    main()
