internal import CLibvirt

/// One libvirt domain (VM) and its power state at the moment it was read.
public struct DomainInfo: Sendable, Equatable {
    /// Lowercase canonical UUID, for example "6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a01".
    public var uuid: String
    public var name: String
    /// libvirt's domain id; nil when the domain is not running.
    public var id: Int32?
    public var state: DomainState
    /// Why the domain is in that state, for example "booted", "user", "destroyed" (see `DomainState.reasonName`).
    public var reason: String

    public init(uuid: String, name: String, id: Int32?, state: DomainState, reason: String) {
        self.uuid = uuid
        self.name = name
        self.id = id
        self.state = state
        self.reason = reason
    }

    /// Reads a domain through a `virDomainPtr` the caller owns (and frees).
    init(reading domain: virDomainPtr) throws(LibvirtError) {
        let uuid = try Self.uuidString(of: domain)
        guard let namePointer = virDomainGetName(domain) else {
            throw LibvirtError.last("read the name of domain \(uuid)")
        }
        let name = String(cString: namePointer)  // owned by the domain object: not freed here
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(domain, &state, &reason, 0) == 0 else {
            throw LibvirtError.last("read the state of domain \(name) (\(uuid))")
        }
        // virDomainGetID answers (unsigned)-1 for a domain that is not running.
        let rawID = virDomainGetID(domain)
        let domainState = DomainState(libvirtState: state)
        self.init(
            uuid: uuid,
            name: name,
            id: rawID == UInt32.max ? nil : Int32(bitPattern: rawID),
            state: domainState,
            reason: domainState.reasonName(reason)
        )
    }

    static func uuidString(of domain: virDomainPtr) throws(LibvirtError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        guard virDomainGetUUIDString(domain, &buffer) == 0 else {
            throw LibvirtError.last("read a domain's UUID")
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).lowercased()
    }
}
