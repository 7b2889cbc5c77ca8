import Foundation
import HeartbeatCore

#if canImport(Glibc)
import Glibc
#endif

struct TestFailure: Error, CustomStringConvertible {
    let description: String
}

/// A fresh folder under /tmp, removed when the last reference goes away.
final class TemporaryFolder: Sendable {
    let path: String

    init(prefix: String = "kvmha-sidecar-test") throws {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw TestFailure(description: "mkdtemp failed: errno \(errno)")
        }
        path = String(cString: created)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A host's record as written in this folder (used as a pool).
    func record(of host: HostAddress) throws -> HeartbeatRecord {
        let file = path + "/" + PoolLayout.record(host)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TestFailure(description: "no record at \(file)")
        }
        return try RecordCodec.decode(Array(data), expectedHost: host).get()
    }
}
