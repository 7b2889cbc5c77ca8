internal import CLibvirt

/// A domain lifecycle event: a domain was defined, started, paused, stopped, ...
public struct DomainLifecycleEvent: Sendable, Equatable, CustomStringConvertible {
    /// Lowercase canonical UUID of the domain.
    public var uuid: String
    public var name: String
    public var kind: DomainEventKind
    /// libvirt's detail number for the kind (see `detailName`).
    public var detail: Int32

    public init(uuid: String, name: String, kind: DomainEventKind, detail: Int32) {
        self.uuid = uuid
        self.name = name
        self.kind = kind
        self.detail = detail
    }

    /// The detail as libvirt names it, for example "destroyed" for a `stopped` event.
    public var detailName: String { kind.detailName(detail) }

    public var description: String { "\(name) (\(uuid)) \(kind.rawValue): \(detailName)" }

    /// Builds the event inside libvirt's callback; the domain object belongs to libvirt. Nil for an event
    /// kind newer than this code knows, or a domain whose identity cannot be read.
    init?(domain: virDomainPtr, event: Int32, detail: Int32) {
        guard let kind = DomainEventKind(libvirtEvent: event),
            let uuid = try? DomainInfo.uuidString(of: domain),
            let namePointer = virDomainGetName(domain)
        else {
            virResetLastError()
            return nil
        }
        self.init(uuid: uuid, name: String(cString: namePointer), kind: kind, detail: detail)
    }
}
