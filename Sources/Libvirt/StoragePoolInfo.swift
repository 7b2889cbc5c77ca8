/// One libvirt storage pool. On a CloudStack host a shared primary storage is a `netfs` pool named by
/// its CloudStack pool UUID and mounted at `/mnt/<uuid>`.
public struct StoragePoolInfo: Sendable, Equatable {
    public var name: String
    /// Lowercase canonical UUID.
    public var uuid: String
    /// The pool type from its XML: "netfs", "dir", "logical", ...
    public var type: String
    /// `<source><host name=…/>`: the NFS server for a `netfs` pool.
    public var sourceHost: String?
    /// `<source><dir path=…/>`: the export path for a `netfs` pool.
    public var sourceDir: String?
    /// `<target><path>`: where the pool is mounted or lives locally.
    public var targetPath: String?
    /// Whether the pool is started (for `netfs`: mounted by libvirt).
    public var active: Bool

    public init(
        name: String,
        uuid: String,
        type: String,
        sourceHost: String?,
        sourceDir: String?,
        targetPath: String?,
        active: Bool
    ) {
        self.name = name
        self.uuid = uuid
        self.type = type
        self.sourceHost = sourceHost
        self.sourceDir = sourceDir
        self.targetPath = targetPath
        self.active = active
    }
}
