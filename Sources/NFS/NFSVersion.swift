/// The NFS protocol version libnfs speaks.
public enum NFSVersion: Int, Sendable, CaseIterable {
    /// What the sidecar relies on: fully supported by libnfs 4.0.0.
    case v3 = 3
    /// Partly working in libnfs 4.0.0 (no lease renewal, see ``NFSContext``).
    case v4 = 4
}
