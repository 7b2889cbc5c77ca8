import NFS
import Testing

@Suite struct NFSURLTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        let text: String
        let server: String
        let export: String
        let version: NFSVersion
        let nfsPort: UInt16?
        let mountPort: UInt16?
        let libnfsURL: String
        var testDescription: String { text }
    }

    static let valid: [Valid] = [
        Valid(
            text: "nfs://10.0.0.5/export/primary",
            server: "10.0.0.5",
            export: "/export/primary",
            version: .v3,
            nfsPort: nil,
            mountPort: nil,
            libnfsURL: "nfs://10.0.0.5/export/primary?version=3"
        ),
        Valid(
            text: "nfs://nas.example.org/export/",
            server: "nas.example.org",
            export: "/export",
            version: .v3,
            nfsPort: nil,
            mountPort: nil,
            libnfsURL: "nfs://nas.example.org/export?version=3"
        ),
        Valid(
            text: "NFS://nas/",
            server: "nas",
            export: "/",
            version: .v3,
            nfsPort: nil,
            mountPort: nil,
            libnfsURL: "nfs://nas/?version=3"
        ),
        Valid(
            text: "nfs://127.0.0.1:20490/export?version=4",
            server: "127.0.0.1",
            export: "/export",
            version: .v4,
            nfsPort: 20490,
            mountPort: nil,
            libnfsURL: "nfs://127.0.0.1/export?version=4&nfsport=20490"
        ),
        Valid(
            text: "nfs://127.0.0.1/export?version=3&nfsport=2050&mountport=2051",
            server: "127.0.0.1",
            export: "/export",
            version: .v3,
            nfsPort: 2050,
            mountPort: 2051,
            libnfsURL: "nfs://127.0.0.1/export?version=3&nfsport=2050&mountport=2051"
        ),
        Valid(
            text: "nfs://h1:2050/e?mountport=2051&nfsport=2050",
            server: "h1",
            export: "/e",
            version: .v3,
            nfsPort: 2050,
            mountPort: 2051,
            libnfsURL: "nfs://h1/e?version=3&nfsport=2050&mountport=2051"
        ),
        Valid(
            text: "nfs://[fd00::5]:2050/export?version=4",
            server: "fd00::5",
            export: "/export",
            version: .v4,
            nfsPort: 2050,
            mountPort: nil,
            libnfsURL: "nfs://[fd00::5]/export?version=4&nfsport=2050"
        ),
    ]

    @Test(arguments: valid)
    func parsesValidURL(_ row: Valid) throws {
        let url = try NFSURL(parsing: row.text)
        #expect(url.server == row.server)
        #expect(url.export == row.export)
        #expect(url.version == row.version)
        #expect(url.nfsPort == row.nfsPort)
        #expect(url.mountPort == row.mountPort)
        #expect(url.libnfsURL == row.libnfsURL)
        // The libnfs form parses back to the same value.
        #expect(try NFSURL(parsing: url.libnfsURL) == url)
    }

    struct Invalid: Sendable, CustomTestStringConvertible {
        let text: String
        let part: NFSURLError.Part
        var testDescription: String { text }
    }

    static let invalid: [Invalid] = [
        Invalid(text: "", part: .scheme),
        Invalid(text: "http://nas/export", part: .scheme),
        Invalid(text: "/mnt/pool", part: .scheme),
        Invalid(text: "nfs://nas", part: .export),
        Invalid(text: "nfs:///export", part: .host),
        Invalid(text: "nfs://:2049/export", part: .host),
        Invalid(text: "nfs://h/export", part: .host),
        Invalid(text: "nfs://user@nas/export", part: .host),
        Invalid(text: "nfs://na_s/export", part: .host),
        Invalid(text: "nfs://[fd00::5/export", part: .host),
        Invalid(text: "nfs://nas:/export", part: .port),
        Invalid(text: "nfs://nas:0/export", part: .port),
        Invalid(text: "nfs://nas:65536/export", part: .port),
        Invalid(text: "nfs://nas:20x/export", part: .port),
        Invalid(text: "nfs://nas:2050/export?nfsport=2051", part: .port),
        Invalid(text: "nfs://nas/a//b", part: .export),
        Invalid(text: "nfs://nas/a/../b", part: .export),
        Invalid(text: "nfs://nas/export?", part: .query),
        Invalid(text: "nfs://nas/export?version", part: .query),
        Invalid(text: "nfs://nas/export?version=3&version=4", part: .query),
        Invalid(text: "nfs://nas/export?uid=0", part: .query),
        Invalid(text: "nfs://nas/export?version=3&", part: .query),
        Invalid(text: "nfs://nas/export?version=2", part: .version),
        Invalid(text: "nfs://nas/export?version=4.1", part: .version),
        Invalid(text: "nfs://nas/export?nfsport=-1", part: .nfsPort),
        Invalid(text: "nfs://nas/export?nfsport=", part: .nfsPort),
        Invalid(text: "nfs://nas/export?mountport=99999", part: .mountPort),
        Invalid(text: "nfs://nas/my export", part: .syntax),
        Invalid(text: "nfs://nas/export%20x", part: .syntax),
        Invalid(text: "nfs://nas/export#frag", part: .syntax),
    ]

    @Test(arguments: invalid)
    func rejectsInvalidURLNamingThePart(_ row: Invalid) {
        #expect {
            _ = try NFSURL(parsing: row.text)
        } throws: { error in
            guard let error = error as? NFSURLError else { return false }
            return error.part == row.part && error.description.contains(row.part.rawValue)
        }
    }

    @Test func memberwiseInitValidates() throws {
        let url = try NFSURL(server: "nas", export: "/export/", version: .v4, nfsPort: 2049)
        #expect(url.export == "/export")
        #expect(url.libnfsURL == "nfs://nas/export?version=4&nfsport=2049")
        #expect(throws: NFSURLError.self) { try NFSURL(server: "nas", export: "export") }
        #expect(throws: NFSURLError.self) { try NFSURL(server: "", export: "/export") }
        #expect(throws: NFSURLError.self) { try NFSURL(server: "nas", export: "/e", mountPort: 0) }
    }
}
