//! The smallest useful component: `greet("world")` returns `"Hello, world!"`.

wit_bindgen::generate!({ world: "hello", path: "wit" });

struct Hello;

impl Guest for Hello {
    fn greet(name: String) -> String {
        format!("Hello, {name}!")
    }
}

export!(Hello);
