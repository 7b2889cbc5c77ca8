import HeartbeatCore
import Hummingbird

/// This host's mode: `normal`, `maintenance` (self-fencing disarmed by an operator; kept across restarts) or
/// `rejoining` (after a fence or an unclean stop, for one `deadAfter`).
public struct APIHostMode: Codable, Sendable, Equatable {
    public var mode: String
    /// The operator's reason, in `maintenance`.
    @JSONNullable public var reason: String?
    /// Since when maintenance has been on, Unix ms.
    @JSONNullable public var maintenanceSinceMs: Int64?
    /// Until when this host rejoins, Unix ms (in `rejoining`).
    @JSONNullable public var rejoiningUntilMs: Int64?
    /// `fenced` or `unclean stop` (in `rejoining`).
    @JSONNullable public var rejoiningBecause: String?

    public init(_ snapshot: HostModeStore.Snapshot) {
        mode = snapshot.mode.name
        reason = snapshot.mode.reason
        maintenanceSinceMs = snapshot.maintenanceSinceMs
        rejoiningUntilMs = snapshot.rejoiningUntilMs
        rejoiningBecause = snapshot.rejoiningBecause
    }
}

/// What `POST /v1/maintenance` asks.
public struct MaintenanceRequest: Sendable, Equatable {
    public var maintenance: Bool
    public var reason: String
}

extension APIRequestParser {
    static func maintenance(body: [UInt8]) throws(APIError) -> MaintenanceRequest {
        let fields = try object(body, allowed: ["maintenance", "reason"], what: "the maintenance request")
        guard let value = fields["maintenance"] else {
            throw .badRequest("missing-field", "maintenance is required (true or false)")
        }
        guard case .bool(let on) = value else {
            throw .badRequest("invalid-field", "maintenance must be true or false")
        }
        var reason = ""
        switch fields["reason"] {
        case nil, .null?: break
        case .string(let text)?:
            guard text.utf8.count <= HostModeStore.maxReasonBytes,
                !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
            else {
                throw .badRequest(
                    "invalid-field",
                    "reason: at most \(HostModeStore.maxReasonBytes) bytes, no control characters")
            }
            reason = text
        default:
            throw .badRequest("invalid-field", "reason must be a string")
        }
        if !on && !reason.isEmpty {
            throw .badRequest("invalid-field", "reason: only with maintenance true")
        }
        return MaintenanceRequest(maintenance: on, reason: reason)
    }
}

extension APIHandlers {
    func hostMode() throws(APIError) -> Response {
        guard let store = dependencies.hostMode else {
            throw APIError(.notFound, "no-host-mode", "this daemon keeps no host mode")
        }
        return APIJSON.response(APIHostMode(store.snapshot()))
    }

    func setMaintenance(body: [UInt8]) throws(APIError) -> Response {
        guard let store = dependencies.hostMode else {
            throw APIError(.notFound, "no-host-mode", "this daemon keeps no host mode")
        }
        let request = try APIRequestParser.maintenance(body: body)
        do {
            if request.maintenance {
                try store.enterMaintenance(reason: request.reason)
            } else {
                try store.leaveMaintenance()
            }
        } catch {
            switch error {
            case .badReason(let text): throw .badRequest("invalid-field", text)
            case .io(let text): throw APIError(.internalServerError, "state-not-saved", text)
            }
        }
        return APIJSON.response(APIHostMode(store.snapshot()))
    }
}
