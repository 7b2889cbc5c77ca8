public import HeartbeatCore

/// The body of `POST /v1/peers/{ip}/activity`, validated: nothing in it can name a path outside the pool.
public struct ActivityRequest: Sendable, Equatable {
    public var suspect: HostAddress
    public var pool: String
    /// Plain file names in the pool's root (`ActivityCheck.isValidVolumeName`).
    public var volumes: [String]
    public var suspectTime: Int64
    /// nil: our own wall clock.
    public var checkerTime: Int64?

    public init(suspect: HostAddress, pool: String, volumes: [String], suspectTime: Int64, checkerTime: Int64?) {
        self.suspect = suspect
        self.pool = pool
        self.volumes = volumes
        self.suspectTime = suspectTime
        self.checkerTime = checkerTime
    }
}

/// The body of `POST /v1/reconcile`.
public struct ReconcileRequest: Sendable, Equatable {
    /// nil: this host.
    public var host: HostAddress?
    public var vms: [BelievedVM]
}

/// Reads request bodies with the bounded JSON reader of HeartbeatCore: exact integers, no unknown keys, a
/// message naming the field that is wrong.
enum APIRequestParser {
    static func activity(suspect: HostAddress, body: [UInt8]) throws(APIError) -> ActivityRequest {
        let fields = try object(
            body,
            allowed: ["pool", "volumes", "suspectTime", "checkerTime"],
            what: "the activity request"
        )
        let pool = try string(fields, "pool")
        guard SettingsResolver.isValidPoolID(pool) else {
            throw .badRequest(
                "invalid-pool",
                "pool: \(APIText.excerpt(pool)) is not a pool id (letters, digits, '-', '_', '.')"
            )
        }
        guard case .array(let items)? = fields["volumes"] else {
            throw fields["volumes"] == nil ? missing("volumes") : wrongType("volumes", "an array of file names")
        }
        guard items.count <= ActivityCheck.maxVolumes else {
            throw .badRequest("invalid-field", "volumes: more than \(ActivityCheck.maxVolumes) entries")
        }
        var volumes: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let name) = item else { throw wrongType("volumes[\(index)]", "a string") }
            guard ActivityCheck.isValidVolumeName(name) else {
                throw .badRequest(
                    "invalid-volume",
                    "volumes[\(index)]: \(APIText.excerpt(name)) is not a plain file name (no '/', no '..', no control characters, at most 255 bytes)"
                )
            }
            volumes.append(name)
        }
        let suspectTime = try unixTime(fields, "suspectTime")
        var checkerTime: Int64?
        if let value = fields["checkerTime"], value != .null { checkerTime = try unixTime(fields, "checkerTime") }
        return ActivityRequest(
            suspect: suspect,
            pool: pool,
            volumes: volumes,
            suspectTime: suspectTime,
            checkerTime: checkerTime
        )
    }

    static func reconcile(body: [UInt8]) throws(APIError) -> ReconcileRequest {
        let fields = try object(body, allowed: ["host", "vms"], what: "the reconcile request")
        var host: HostAddress?
        switch fields["host"] {
        case nil, .null?: host = nil
        case .string(let text)?:
            guard let address = HostAddress(text) else { throw .invalidHost(text) }
            host = address
        default: throw wrongType("host", "an IPv4 address as a string")
        }
        guard case .array(let items)? = fields["vms"] else {
            throw fields["vms"] == nil ? missing("vms") : wrongType("vms", "an array of {uuid, name, state}")
        }
        guard items.count <= APILimits.maxBelievedVMs else {
            throw .badRequest("invalid-field", "vms: more than \(APILimits.maxBelievedVMs) entries")
        }
        var vms: [BelievedVM] = []
        var seen: Set<String> = []
        for (index, item) in items.enumerated() {
            let path = "vms[\(index)]"
            guard case .object(let entry) = item else { throw wrongType(path, "an object {uuid, name, state}") }
            if let unknown = entry.keys.sorted().first(where: { !["uuid", "name", "state"].contains($0) }) {
                throw .badRequest(
                    "unknown-field",
                    "\(path): unknown field \(APIText.excerpt(unknown)) (known: uuid, name, state)"
                )
            }
            let uuid = try optionalIdentifier(entry, "uuid", path)
            let name = try optionalIdentifier(entry, "name", path)
            guard uuid != nil || name != nil else { throw .badRequest("missing-field", "\(path): give uuid or name") }
            let stateText = try string(entry, "state", path)
            guard let state = BelievedState(text: stateText) else {
                throw .badRequest(
                    "invalid-field",
                    "\(path).state: \(APIText.excerpt(stateText)) is not Running or Stopped (or PowerOn, PowerOff)"
                )
            }
            let key = uuid.map { "uuid:\($0.lowercased())" } ?? "name:\(name!)"
            guard seen.insert(key).inserted else {
                throw .badRequest("duplicate-vm", "\(path): the same VM is listed twice")
            }
            vms.append(BelievedVM(uuid: uuid, name: name, state: state))
        }
        return ReconcileRequest(host: host, vms: vms)
    }

    // MARK: Pieces

    static func object(_ body: [UInt8], allowed: [String], what: String) throws(APIError) -> [String: JSONValue]
    {
        let value: JSONValue
        do {
            value = try JSONValue.parse(body[...])
        } catch {
            throw .badRequest("malformed-json", "\(what) is not valid JSON: \(error.description)")
        }
        guard case .object(let fields) = value else {
            throw .badRequest("malformed-json", "\(what) must be a JSON object")
        }
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw .badRequest(
                "unknown-field",
                "unknown field \(APIText.excerpt(unknown)) (known: \(allowed.joined(separator: ", ")))"
            )
        }
        return fields
    }

    private static func missing(_ field: String) -> APIError { .badRequest("missing-field", "\(field) is required") }

    private static func wrongType(_ field: String, _ expected: String) -> APIError {
        .badRequest("invalid-field", "\(field) must be \(expected)")
    }

    private static func string(
        _ fields: [String: JSONValue],
        _ key: String,
        _ path: String? = nil
    ) throws(APIError) -> String {
        let name = path.map { "\($0).\(key)" } ?? key
        guard let value = fields[key] else { throw missing(name) }
        guard case .string(let text) = value else { throw wrongType(name, "a string") }
        return text
    }

    private static func optionalIdentifier(
        _ fields: [String: JSONValue],
        _ key: String,
        _ path: String
    ) throws(APIError) -> String? {
        switch fields[key] {
        case nil, .null?: return nil
        case .string(let text)?:
            guard !text.isEmpty, text.utf8.count <= APILimits.maxVMFieldLength else {
                throw .badRequest("invalid-field", "\(path).\(key) must be 1 to \(APILimits.maxVMFieldLength) bytes")
            }
            return text
        default: throw wrongType("\(path).\(key)", "a string")
        }
    }

    /// Unix seconds as a JSON integer (no fraction, no exponent, not negative).
    private static func unixTime(_ fields: [String: JSONValue], _ key: String) throws(APIError) -> Int64 {
        guard let value = fields[key] else { throw missing(key) }
        guard case .number(let text) = value, let seconds = Int64(text), seconds >= 0 else {
            throw wrongType(key, "Unix seconds as a non-negative integer")
        }
        return seconds
    }
}
