import Foundation

/// Files under Tests/Harness/libvirt (shared with LibvirtTests).
enum HarnessFiles {
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // SidecarTests
        .deletingLastPathComponent()  // Tests
        .appendingPathComponent("Harness/libvirt")

    static func path(_ name: String) -> String {
        directory.appendingPathComponent(name).standardizedFileURL.path
    }

    /// The suite's node: seven domains, one per run state, two CloudStack netfs pools and a dir pool.
    static var nodeURI: String { "test://" + path("node.xml") }
}
