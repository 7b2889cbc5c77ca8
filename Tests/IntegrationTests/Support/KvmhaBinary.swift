import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The built `kvmha` executable: `KVMHA_BIN` if set, else `kvmha` beside the running test bundle
/// (both live in `.build/<triple>/<configuration>/`).
func kvmhaBinary() throws -> URL {
    if let override = ProcessInfo.processInfo.environment["KVMHA_BIN"], !override.isEmpty {
        guard access(override, X_OK) == 0 else {
            throw HarnessError("KVMHA_BIN=\(override) is not an executable file")
        }
        return URL(fileURLWithPath: override)
    }
    let testBundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let candidate = URL(fileURLWithPath: testBundle).deletingLastPathComponent().appendingPathComponent("kvmha")
    guard access(candidate.path, X_OK) == 0 else {
        throw HarnessError(
            "kvmha is not built at \(candidate.path) — run `swift build --product kvmha` first (or set KVMHA_BIN)"
        )
    }
    return candidate
}
