import Foundation
public import HeartbeatCore
import Yams

/// Reads the config file (YAML) and applies environment and flag overrides.
public enum ConfigLoader {
    public static let defaultPath = "/etc/kvmha/sidecar.yaml"

    /// - Parameters:
    ///   - path: an explicit `--config`; must exist. nil: the default path if it exists, else defaults only.
    ///   - base: settings to start from instead of the built-in defaults (the embedded demo).
    public static func load(
        path: String?, environment: [String: String], overrides: [String: String],
        base: (name: String, root: ConfigNode)? = nil
    ) throws(ConfigError) -> SidecarSettings {
        var file: (name: String, root: ConfigNode)? = base
        let chosen = path ?? environment["KVMHA_CONFIG"] ?? (FileManager.default.fileExists(atPath: defaultPath) ? defaultPath : nil)
        if let chosen {
            let text: String
            do {
                text = try String(contentsOfFile: chosen, encoding: .utf8)
            } catch {
                throw ConfigError(["\(chosen): cannot read the config file (\(Self.reason(error)))"])
            }
            let root = try parse(yaml: text, name: chosen)
            file = (chosen, merge(base: base?.root, over: root))
        }
        return try SettingsResolver().resolve(file: file, environment: environment, overrides: overrides)
    }

    /// The config file's own keys win over the base's.
    private static func merge(base: ConfigNode?, over node: ConfigNode) -> ConfigNode {
        guard case .map(let baseEntries)? = base, case .map(let entries) = node else { return node }
        return .map(baseEntries.merging(entries) { _, new in new })
    }

    public static func parse(yaml: String, name: String) throws(ConfigError) -> ConfigNode {
        let node: Yams.Node?
        do {
            node = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(["\(name): not valid YAML: \(error)"])
        }
        guard let node else { return .null }
        return try convert(node, name: name)
    }

    private static func convert(_ node: Yams.Node, name: String) throws(ConfigError) -> ConfigNode {
        switch node {
        case .scalar(let scalar):
            if scalar.tag.description == Tag.Name.null.rawValue { return .null }
            return .scalar(scalar.string)
        case .sequence(let sequence):
            var items: [ConfigNode] = []
            for item in sequence { items.append(try convert(item, name: name)) }
            return .list(items)
        case .mapping(let mapping):
            var entries: [String: ConfigNode] = [:]
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else { throw ConfigError(["\(name): keys must be plain names"]) }
                guard entries[keyScalar.string] == nil else {
                    throw ConfigError(["\(name): key '\(keyScalar.string)' appears twice"])
                }
                entries[keyScalar.string] = try convert(value, name: name)
            }
            return .map(entries)
        case .alias:
            throw ConfigError(["\(name): YAML aliases are not supported"])
        }
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain, let code = POSIXErrorCode(rawValue: Int32(underlying.code))
        {
            return "\(POSIXError(code).localizedDescription)"
        }
        return nsError.localizedDescription
    }
}
