fn main() {
    eprintln!("viz: not built yet");
    std::process::exit(1);
}
