// Why this exists: on Linux, SwiftPM links every executable target with
// `--defsym main=<Module>_main` (so that tests can import executables), and
// that overrides the `main` libFuzzer would otherwise supply. Each harness
// therefore defines `<Module>_main` and hands over to libFuzzer's own driver.
// Where SwiftPM does not rename (macOS), libFuzzer's `main` is used and these
// functions are simply never called.

public typealias FuzzTarget = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

// libFuzzer's documented embedding entry point (`FuzzerInterface.h`);
// declared by symbol name because the toolchain ships no module map for it.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ target: FuzzTarget
) -> CInt

/// Runs libFuzzer with the process's command line and `target`.
public func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ target: FuzzTarget) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, target)
}
