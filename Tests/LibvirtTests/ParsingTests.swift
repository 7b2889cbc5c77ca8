import Testing

@testable import Libvirt

@Suite("Names, backoff and pool XML")
struct ParsingTests {
    @Test(
        "reason names follow libvirt's enums",
        arguments: [
            (DomainState.running, Int32(1), "booted"),
            (.running, 5, "unpaused"),
            (.running, 6, "migration canceled"),
            (.paused, 1, "user"),
            (.paused, 5, "ioerror"),
            (.shutoff, 1, "shutdown"),
            (.shutoff, 2, "destroyed"),
            (.shutoff, 3, "crashed"),
            (.shutoff, 4, "migrated"),
            (.shutoff, 8, "daemon"),
            (.crashed, 1, "panicked"),
            (.shuttingDown, 1, "user"),
            (.blocked, 0, "unknown"),
            (.shutoff, 99, "reason 99"),
            (.running, -1, "reason -1"),
        ]
    )
    func reasonNames(state: DomainState, reason: Int32, name: String) {
        #expect(state.reasonName(reason) == name)
    }

    @Test("libvirt state numbers map to states; unknown numbers to noState")
    func stateNumbers() {
        let mapped = (0...7).map { DomainState(libvirtState: Int32($0)) }
        #expect(mapped == [.noState, .running, .blocked, .paused, .shuttingDown, .shutoff, .crashed, .pmsuspended])
        #expect(DomainState(libvirtState: 42) == .noState)
        #expect(DomainState.shuttingDown.rawValue == "shutdown-in-progress")
    }

    @Test("event kinds and details follow libvirt's enums")
    func eventNames() {
        #expect((0...8).compactMap { DomainEventKind(libvirtEvent: Int32($0)) } == DomainEventKind.allCases)
        #expect(DomainEventKind(libvirtEvent: 9) == nil)
        #expect(DomainEventKind.stopped.detailName(1) == "destroyed")
        #expect(DomainEventKind.stopped.detailName(2) == "crashed")
        #expect(DomainEventKind.started.detailName(1) == "migrated")
        #expect(DomainEventKind.suspended.detailName(2) == "ioerror")
        #expect(DomainEventKind.crashed.detailName(7) == "detail 7")
    }

    @Test("backoff doubles from the initial delay up to the cap")
    func backoff() {
        let backoff = ReconnectBackoff.standard
        let delays = (1...8).map { backoff.delay(afterFailures: $0) }
        #expect(
            delays == [
                .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600),
                .milliseconds(3200), .seconds(5), .seconds(5), .seconds(5),
            ]
        )
        #expect(backoff.delay(afterFailures: 0) == .milliseconds(200))
        #expect(backoff.delay(afterFailures: 10_000) == .seconds(5))
    }

    @Test("pool XML: type, source host and dir, target path; entities decoded")
    func poolXML() throws {
        let xml = """
            <pool type='netfs'>
              <name>c2a5e0f4</name>
              <source>
                <host name='nfs&amp;1.example.org'/>
                <dir path='/export/a &apos;b&apos;'/>
                <format type='auto'/>
              </source>
              <target>
                <path>
                  /mnt/c2a5e0f4&apos;s</path>
                <permissions><mode>0755</mode></permissions>
              </target>
            </pool>
            """
        let pool = try StoragePoolXML(parsing: xml)
        #expect(
            pool
                == StoragePoolXML(
                    type: "netfs",
                    sourceHost: "nfs&1.example.org",
                    sourceDir: "/export/a 'b'",
                    targetPath: "/mnt/c2a5e0f4's"
                )
        )
    }

    @Test("pool XML without source or target leaves them nil; anything but a typed <pool> is an error")
    func poolXMLEdges() throws {
        let bare = try StoragePoolXML(parsing: "<pool type='dir'><name>x</name></pool>")
        #expect(bare == StoragePoolXML(type: "dir", sourceHost: nil, sourceDir: nil, targetPath: nil))
        #expect(throws: LibvirtError.self) { try StoragePoolXML(parsing: "") }
        #expect(throws: LibvirtError.self) { try StoragePoolXML(parsing: "not xml") }
        #expect(throws: LibvirtError.self) { try StoragePoolXML(parsing: "<pool type='dir'>") }
        #expect(throws: LibvirtError.self) { try StoragePoolXML(parsing: "<pool type='dir'><a></pool>") }
        #expect(throws: LibvirtError.self) { try StoragePoolXML(parsing: "<volume type='file'/>") }
        #expect(throws: LibvirtError.self) { try StoragePoolXML(parsing: "<pool><name>x</name></pool>") }
    }
}
