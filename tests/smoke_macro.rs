use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SiloMode {
    Monolith,
    Region,
}

struct Upgrade<'a> {
    interactive: bool,
    log: &'a Mutex<Vec<String>>,
}

trait Model: Send + Sync {
    fn table(&self) -> &'static str;
}
struct User {
    email: String,
}
impl Model for User {
    fn table(&self) -> &'static str {
        "auth_user"
    }
}
struct PostSave<'a, M: ?Sized> {
    instance: &'a M,
    created: bool,
    log: &'a Mutex<Vec<String>>,
}
impl<'b, 'x: 'b, M: Model + 'static> From<&'b PostSave<'x, M>> for PostSave<'b, dyn Model> {
    fn from(a: &'b PostSave<'x, M>) -> Self {
        PostSave {
            instance: a.instance,
            created: a.created,
            log: a.log,
        }
    }
}

signals::signal! {
    /// Sent after upgrade.
    static post_upgrade: Signal<Upgrade<'_>, sender = SiloMode>;
    static post_save: Signal<PostSave<'_, M>, sender = type M: Model, any = PostSave<'_, dyn Model>>;
}

#[signals::receiver(signal = post_upgrade, sender = SiloMode::Monolith, dispatch_uid = "create_first_user")]
fn create_first_user(log: &Mutex<Vec<String>>, interactive: bool) {
    log.lock()
        .unwrap()
        .push(format!("first user {interactive}"));
}

#[signals::receiver(signal = post_save, sender = User)]
fn create_user_email(created: bool, instance: &User, log: &Mutex<Vec<String>>) {
    log.lock()
        .unwrap()
        .push(format!("{} {created}", instance.email));
}

#[signals::receiver(signal = post_save)]
fn audit(sender: signals::TypeSender, instance: &dyn Model, log: &Mutex<Vec<String>>) {
    log.lock()
        .unwrap()
        .push(format!("audit {} {}", sender.name(), instance.table()));
}

#[test]
fn smoke() {
    let log = Mutex::new(Vec::new());
    post_upgrade
        .send(
            &SiloMode::Monolith,
            &Upgrade {
                interactive: true,
                log: &log,
            },
        )
        .unwrap();
    post_upgrade
        .send(
            &SiloMode::Region,
            &Upgrade {
                interactive: true,
                log: &log,
            },
        )
        .unwrap();
    let user = User {
        email: "a@b".into(),
    };
    post_save
        .send::<User>(&PostSave {
            instance: &user,
            created: true,
            log: &log,
        })
        .unwrap();
    assert_eq!(
        log.into_inner().unwrap(),
        [
            "first user true",
            "a@b true",
            "audit smoke_macro::User auth_user"
        ]
    );
    println!("{:#?}", signals::registry());
}
