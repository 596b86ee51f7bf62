fn main() {
    eprintln!("run-bm: not built yet");
    std::process::exit(1);
}
