import Foundation
public import HeartbeatCore
internal import Libvirt

/// One VM on this host as `kvmha vms` and the API show it: what libvirt says, plus how long it has been
/// in that state when the daemon knows. Its JSON form (`Codable`) is the one both print.
public struct LocalVM: Codable, Sendable, Equatable {
    public var uuid: String
    public var name: String
    /// libvirt's domain id; nil (JSON `null`) when the domain is not running.
    public var id: Int32?
    public var state: VMPowerState
    /// libvirt's reason for the state, for example "booted", "user", "destroyed".
    public var reason: String
    /// Unix milliseconds since the VM has been in this state as far as the daemon knows; nil when unknown
    /// (a one-shot read of libvirt has no history). Left out of the JSON when nil.
    public var sinceMs: Int64?

    public init(uuid: String, name: String, id: Int32?, state: VMPowerState, reason: String, sinceMs: Int64?) {
        self.uuid = uuid
        self.name = name
        self.id = id
        self.state = state
        self.reason = reason
        self.sinceMs = sinceMs
    }

    /// The entry our heartbeat record carries; `fallbackSinceMs` stands in for an unknown `sinceMs`.
    public func entry(fallbackSinceMs: Int64) -> VMEntry {
        VMEntry(uuid: uuid, name: name, state: state, reason: reason, sinceMs: sinceMs ?? fallbackSinceMs)
    }

    private enum CodingKeys: String, CodingKey {
        case uuid, name, id, state, reason, sinceMs
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(uuid, forKey: .uuid)
        try container.encode(name, forKey: .name)
        try container.encode(id, forKey: .id)  // explicit null for a domain that is not running
        try container.encode(state, forKey: .state)
        try container.encode(reason, forKey: .reason)
        try container.encodeIfPresent(sinceMs, forKey: .sinceMs)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        uuid = try container.decode(String.self, forKey: .uuid)
        name = try container.decode(String.self, forKey: .name)
        id = try container.decodeIfPresent(Int32.self, forKey: .id)
        state = try container.decode(VMPowerState.self, forKey: .state)
        reason = try container.decode(String.self, forKey: .reason)
        sinceMs = try container.decodeIfPresent(Int64.self, forKey: .sinceMs)
    }

    /// Running domains first in id order, then the others by name — the order of `virsh list --all`.
    public static func virshOrder(_ lhs: LocalVM, _ rhs: LocalVM) -> Bool {
        switch (lhs.id, rhs.id) {
        case (let left?, let right?): return left < right
        case (.some, nil): return true
        case (nil, .some): return false
        case (nil, nil): return (lhs.name, lhs.uuid) < (rhs.name, rhs.uuid)
        }
    }
}

extension LocalVM {
    /// libvirt could not be read.
    public struct ReadError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Every domain libvirt knows at `libvirtURI`, read once on a thread of its own (libvirt calls block),
    /// in `virsh list --all` order. No history, so `sinceMs` is nil.
    public static func readAll(libvirtURI uri: String) async throws(ReadError) -> [LocalVM] {
        let result: Result<[DomainInfo], LibvirtError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    returning: Result { () throws(LibvirtError) in
                        let connection = try LibvirtConnection(uri: uri)
                        defer { connection.close() }
                        return try connection.domains()
                    }
                )
            }
            thread.name = "libvirt-read"
            thread.start()
        }
        switch result {
        case .success(let domains):
            return domains.map { DomainWatcher.localVM($0, sinceMs: nil) }.sorted(by: virshOrder)
        case .failure(let error):
            throw ReadError(description: error.description)
        }
    }
}
