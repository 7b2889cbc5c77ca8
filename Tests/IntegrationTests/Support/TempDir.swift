import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under the system's temporary directory, removed by `remove()` or at the
/// latest when the last reference goes away.
final class TempDir: Sendable {
    /// Absolute, symlinks resolved (so it matches the paths in /proc/self/mountinfo).
    let url: URL
    private let removed = Locked(false)

    init(prefix: String = "kvmha-test") throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-XXXXXX").path
        var bytes = Array(template.utf8CString)
        guard let created = mkdtemp(&bytes) else {
            throw HarnessError("cannot create a temporary directory \(template): \(String(cString: strerror(errno)))")
        }
        url = URL(fileURLWithPath: String(cString: created)).resolvingSymlinksInPath()
    }

    deinit {
        remove()
    }

    var path: String { url.path }

    func appending(_ relativePath: String) -> URL {
        url.appendingPathComponent(relativePath)
    }

    /// Removes the directory and its contents; later calls do nothing. Leaves it in place (and says
    /// so on stderr) while something is mounted inside it: removing through a FUSE mount would
    /// delete the backing files, or hang if the mount is frozen.
    func remove() {
        guard
            removed.withLock({ isRemoved in
                defer { isRemoved = true }
                return !isRemoved
            })
        else { return }
        let mounts = MountTable().mountPoints(under: url.path)
        guard mounts.isEmpty else {
            FileHandle.standardError.write(Data("TempDir: not removing \(url.path): still mounted: \(mounts)\n".utf8))
            return
        }
        try? FileManager.default.removeItem(at: url)
    }
}
