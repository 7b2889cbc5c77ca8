import Foundation
public import HeartbeatCore

#if canImport(Glibc)
import Glibc
#endif

/// Who this sidecar is: the values every record carries.
public struct HostIdentity: Sendable {
    public var address: HostAddress
    public var hostUUID: String?
    public var bootID: String
    public var incarnation: String

    public init(address: HostAddress, hostUUID: String?, bootID: String, incarnation: String) {
        self.address = address
        self.hostUUID = hostUUID
        self.bootID = bootID
        self.incarnation = incarnation
    }

    /// A fresh incarnation for this run of the sidecar.
    public static func current(address: HostAddress, hostUUID: String?) -> HostIdentity {
        HostIdentity(
            address: address,
            hostUUID: hostUUID,
            bootID: readBootID(),
            incarnation: UUID().uuidString.lowercased()
        )
    }

    static func readBootID() -> String {
        let text = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? ""
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? "unknown-boot" : trimmed
    }
}

/// CloudStack's agent configuration (`/etc/cloudstack/agent/agent.properties`): the defaults for host identity.
public struct AgentProperties: Sendable {
    public var values: [String: String]

    public init(text: String) {
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), !trimmed.hasPrefix("!"),
                let separator = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" })
            else { continue }
            let key = trimmed[..<separator].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            values[key] = value
        }
        self.values = values
    }

    public static func load(path: String) -> AgentProperties? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return AgentProperties(text: text)
    }

    /// CloudStack's private network device; `cloudbr1` when not set.
    public var privateNetworkDevice: String { values["private.network.device"] ?? "cloudbr1" }
    public var guid: String? { values["guid"].flatMap { $0.isEmpty ? nil : $0 } }
}

public enum NetworkInterfaces {
    /// The first IPv4 address of `device`, or nil.
    public static func firstIPv4(of device: String) -> HostAddress? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let name = entry.pointee.ifa_name, String(cString: name) == device,
                let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET)
            else { continue }
            let ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
            let bytes = withUnsafeBytes(of: ipv4) { Array($0) }  // network byte order
            return HostAddress(bytes[0], bytes[1], bytes[2], bytes[3])
        }
        return nil
    }
}
