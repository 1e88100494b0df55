#!/usr/bin/env sh
# Times Django's Signal.send on the scenarios of benches/dispatch.rs and prints the ratios to
# the last `cargo bench --bench dispatch` run. Needs python3 and access to PyPI once.
set -eu
cd "$(dirname "$0")/../.."
venv=target/django-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "Django>=5,<6"
fi
exec "$venv/bin/python" benches/django/bench.py "${1:-target/criterion}"
