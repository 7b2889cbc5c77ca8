import HeartbeatCore
import Testing

/// The drop-in commands read CloudStack's arguments the way the scripts' `getopts` does.
@Suite("CloudStackDropIn arguments")
struct CloudStackDropInArgumentsTests {
    static let heartbeat = CloudStackDropInRequest.heartbeatGrammar

    @Test func separateAttachedAndClusteredOptions() throws {
        let parsed = try CloudStackDropInArguments.parse(
            ["-i", "10.0.0.9", "-p/export", "-m", "/mnt/p1", "-h", "10.0.0.5", "-rc", "-t", "60"],
            grammar: Self.heartbeat
        ).get()
        #expect(parsed.values == ["i": "10.0.0.9", "p": "/export", "m": "/mnt/p1", "h": "10.0.0.5", "t": "60"])
        #expect(parsed.flags == ["r", "c"])
        #expect(parsed.ignored.isEmpty)
    }

    @Test func valueTakesTheNextWordEvenWhenEmptyOrDashed() throws {
        let parsed = try CloudStackDropInArguments.parse(
            ["-u", "", "-p", "-weird", "-i", "x"],
            grammar: CloudStackDropInRequest.activityGrammar
        ).get()
        #expect(parsed.values == ["u": "", "p": "-weird", "i": "x"])
    }

    @Test func laterOccurrenceWinsAndOperandsEndTheOptions() throws {
        let parsed = try CloudStackDropInArguments.parse(
            ["-h", "1.1.1.1", "-h", "2.2.2.2", "extra", "-r"],
            grammar: Self.heartbeat
        ).get()
        #expect(parsed.values["h"] == "2.2.2.2")
        #expect(parsed.flags.isEmpty)
        #expect(parsed.ignored == ["extra", "-r"])
        let terminated = try CloudStackDropInArguments.parse(["-r", "--", "-c"], grammar: Self.heartbeat).get()
        #expect(terminated.flags == ["r"])
        #expect(terminated.ignored == ["-c"])
    }

    @Test(arguments: [
        (["-x"], CloudStackDropInArguments.Problem.unknownOption("-x")),
        (["-rx"], .unknownOption("-x")),
        (["-i"], .missingValue("-i")),
        (["--nope"], .unknownOption("--nope")),
        (["--config"], .missingValue("--config")),
        (["--help=yes"], .unexpectedValue("--help")),
    ])
    func usageProblems(words: [String], problem: CloudStackDropInArguments.Problem) {
        #expect(throws: problem) { try CloudStackDropInArguments.parse(words, grammar: Self.heartbeat).get() }
    }

    @Test func ourLongOptions() throws {
        let parsed = try CloudStackDropInArguments.parse(
            ["--config=/etc/x.yaml", "--io-timeout", "500ms", "--allow-unmounted", "-i", "a"],
            grammar: Self.heartbeat
        ).get()
        #expect(parsed.longValues == ["config": "/etc/x.yaml", "io-timeout": "500ms"])
        #expect(parsed.longFlags == ["allow-unmounted"])
        #expect(parsed.values == ["i": "a"])
    }

    @Test(arguments: [
        ("0", Int64(0)), ("1700000000", 1_700_000_000), ("-5", nil), ("", nil), ("6O", nil), ("1e3", nil),
    ])
    func seconds(text: String, value: Int64?) {
        #expect(CloudStackDropInArguments.seconds(text) == value)
    }
}

/// What each command line asks for, and the exits the scripts take before touching storage.
@Suite("CloudStackDropIn requests")
struct CloudStackDropInRequestTests {
    static let host = HostAddress("10.0.0.5")!
    static let pool = CloudStackDropInRequest.Pool(mountPoint: "/mnt/p1", host: host)
    static let base = ["-i", "10.0.0.9", "-p", "/export", "-m", "/mnt/p1", "-h", "10.0.0.5"]

    @Test(arguments: [
        (base, CloudStackDropInRequest.writeHeartbeat(pool)),
        (base + ["-r", "-t", "60"], .checkHeartbeat(pool, maxIntervalSeconds: 60)),
        (base + ["-r", "-c", "-t", "60"], .checkHeartbeat(pool, maxIntervalSeconds: 60)),  // -r wins, as in the script
        (base + ["-c"], .fence),
        (["-i", "x", "-c"], .fence),  // the script's -c needs nothing else
        (
            ["-m", "/mnt/p1", "-h", "10.0.0.5"],
            .exit(status: 1, message: "-i (the NFS server) is not given: nothing done")
        ),
        (["-i", "", "-c"], .exit(status: 1, message: "-i (the NFS server) is not given: nothing done")),
        (["-i", "x", "-z"], .exit(status: 1, message: "unknown option -z")),
        (base + ["-r"], .exit(status: 1, message: "-r needs -t SECS, the max interval in whole seconds")),
        (
            base + ["-r", "-t", "soon"],
            .exit(status: 1, message: "-r needs -t SECS, the max interval in whole seconds")
        ),
        (["-i", "x", "-h", "10.0.0.5"], .exit(status: 1, message: "-m (the pool's mount point) is not given")),
        (
            ["-i", "x", "-m", "/mnt/p1", "-h", "../x"],
            .exit(status: 1, message: "-h: '../x' is not a host's IPv4 address")
        ),
        (["--help"], .help),
    ])
    func heartbeat(words: [String], request: CloudStackDropInRequest) {
        #expect(CloudStackDropInRequest.heartbeat(words).0 == request)
    }

    @Test func extensions() {
        let (_, extensions) = CloudStackDropInRequest.heartbeat(
            Self.base + ["--io-timeout", "250ms", "--config", "/tmp/c.yaml", "--allow-unmounted"]
        )
        #expect(extensions.ioTimeout == .milliseconds(250))
        #expect(extensions.config == "/tmp/c.yaml")
        #expect(extensions.allowUnmounted)
        #expect(CloudStackDropInRequest.heartbeat(Self.base).1.ioTimeout == .seconds(3))
        #expect(
            CloudStackDropInRequest.heartbeat(Self.base + ["--io-timeout", "0s"]).0
                == .exit(status: 1, message: "--io-timeout: '0s' is not a positive duration (examples: 3s, 500ms)")
        )
    }

    static func activity(
        _ volumes: [String],
        given: Bool = true,
        checker: Int64? = 1_700_000_100
    )
        -> CloudStackDropInRequest
    {
        .vmActivity(
            pool,
            .init(suspectTime: 1_700_000_000, checkerTime: checker, volumeListGiven: given, volumes: volumes)
        )
    }

    static let activityBase = base + ["-t", "1700000100", "-d", "1700000000"]

    @Test(arguments: [
        (activityBase + ["-u", "v1,v2"], activity(["v1", "v2"])),
        (activityBase + ["-u", "v1, v2,,"], activity(["v1", "v2"])),
        (activityBase + ["-u", ""], activity([], given: false)),
        (activityBase, activity([], given: false)),
        (activityBase + ["-u", ","], activity([], given: true)),
        (base + ["-d", "1700000000", "-u", "v1"], activity(["v1"], checker: nil)),
        (["-m", "/m", "-d", "1"], .exit(status: 2, message: "-i (the NFS server) is not given: nothing done")),
        (base + ["-u", "v1"], .exit(status: 2, message: "-d (the suspect time) is not given: nothing done")),
        (base + ["-d", ""], .exit(status: 2, message: "-d (the suspect time) is not given: nothing done")),
        (base + ["-d", "yesterday"], .exit(status: 1, message: "-d: 'yesterday' is not a Unix time")),
        (
            activityBase + ["-u", "../etc/passwd"],
            .exit(status: 1, message: "-u: '../etc/passwd' is not a plain file name in the pool's root")
        ),
        (activityBase + ["-r"], .exit(status: 1, message: "unknown option -r")),
    ])
    func vmActivity(words: [String], request: CloudStackDropInRequest) {
        #expect(CloudStackDropInRequest.vmActivity(words).0 == request)
    }
}

@Suite("CloudStackDropIn mount table")
struct CloudStackDropInMountTableTests {
    static let text = """
        22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw
        98 22 0:51 / /mnt/5f0c-pool rw,relatime shared:50 - nfs4 10.0.0.9:/export rw,vers=4.1
        99 22 0:52 / /tmp/with\\040space rw - fuse.freezefs freezefs rw
        garbage line
        """

    @Test(arguments: [
        ("/mnt/5f0c-pool", true), ("/mnt/5f0c-pool/", true), ("/mnt//5f0c-pool/.", true), ("/", true),
        ("/tmp/with space", true), ("/mnt", false), ("/mnt/5f0c-pool/KVMHA", false), ("mnt/5f0c-pool", false),
        ("/mnt/x/../5f0c-pool", false),
    ])
    func mountPoints(path: String, mounted: Bool) {
        #expect(CloudStackDropInMountTable(mountInfo: Self.text).isMountPoint(path) == mounted)
    }
}
