/// A malformed `nfs://` URL, naming the part that is wrong.
public struct NFSURLError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Part: String, Sendable {
        case syntax, scheme, host, port, export, query, version
        case nfsPort = "nfsport"
        case mountPort = "mountport"
    }

    public let url: String
    public let part: Part
    public let reason: String

    public var description: String { "invalid NFS URL \(url): \(part.rawValue): \(reason)" }
}
