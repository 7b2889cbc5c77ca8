import Foundation

/// Where the repository's harness files are, found from this source file's location.
enum RepositoryPaths {
    /// The repository root: this file is `<root>/Tests/IntegrationTests/Support/RepositoryPaths.swift`.
    /// Symlinks are resolved first, so a package that links the Support folder still finds the repo.
    static let root: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // IntegrationTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    static var freezefsScript: URL {
        root.appendingPathComponent("Tests/Harness/freezefs/freezefs.py")
    }

    /// The interpreter that runs freezefs: `KVMHA_TEST_PYTHON` if set, else the venv that
    /// scripts/install-test-deps.sh creates.
    static var testPython: URL {
        if let override = ProcessInfo.processInfo.environment["KVMHA_TEST_PYTHON"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        return root.appendingPathComponent(".venv/bin/python")
    }

    /// Preloaded before libfaketime so monotonic timers keep working; built by
    /// scripts/install-test-deps.sh (see `ChildProcess.withFakeTime`).
    static var faketimeMonotonicFix: URL {
        root.appendingPathComponent(".venv/lib/libfaketime-monotonic-timers.so")
    }
}
