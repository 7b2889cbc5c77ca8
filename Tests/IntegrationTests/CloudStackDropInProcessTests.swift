import Foundation
import HeartbeatCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `kvmha cloudstack heartbeat` and `kvmha cloudstack vm-activity` run as the CloudStack agent runs the scripts,
/// on temporary pool directories (issue 7, Show 1). Each table below lists a case with CloudStack's behaviour
/// and ours; docs/cloudstack-drop-in.md explains every difference.
///
/// Pools are plain temporary directories, so the commands get `--allow-unmounted`; the mount check itself and
/// the frozen pool use a real (FUSE) mount.
@Suite(.serialized)
struct CloudStackDropInProcessTests {
    static let host = "10.0.0.5"
    static let alive = "=====> ALIVE <====="

    struct Run: CustomStringConvertible {
        var status: Int32
        var stdout: [String]
        var stderr: [String]
        var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    static func kvmha(_ arguments: [String]) async throws -> Run {
        let process = try ChildProcess(executable: try kvmhaBinary(), arguments: arguments, label: "kvmha cloudstack")
        let status = try await process.waitForExit(timeout: .seconds(60))
        return Run(
            status: status,
            stdout: process.lines(after: 0, source: .stdout),
            stderr: process.lines(after: 0, source: .stderr)
        )
    }

    static func heartbeat(_ pool: String, _ extra: [String], unmounted: Bool = true) async throws -> Run {
        try await kvmha(
            ["cloudstack", "heartbeat", "-i", "10.0.0.9", "-p", "/export", "-m", pool, "-h", host] + extra
                + (unmounted ? ["--allow-unmounted"] : [])
        )
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    static func writeFile(_ url: URL, _ text: String) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    static func setMtime(_ url: URL, _ seconds: Int64) throws {
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSince1970: TimeInterval(seconds))],
            ofItemAtPath: url.path
        )
    }

    // MARK: heartbeat -r -t 60 (the neighbour's check)

    struct CheckCase: Sendable, CustomTestStringConvertible {
        var name: String
        /// The file's content, given our clock now; nil: no file.
        var content: @Sendable (Int64) -> String?
        /// What kvmheartbeat.sh prints (it always exits 0).
        var cloudStack: String
        /// Ours: nil for ALIVE, else the age range in the DEAD line or a fragment of the DEAD line.
        var ours: Expected
        var testDescription: String { name }

        enum Expected: Sendable {
            case alive
            case deadByAge(ClosedRange<Int64>)
            case dead(String)
        }
    }

    /// | file                    | kvmheartbeat.sh -r -t 60          | kvmha cloudstack heartbeat -r -t 60        |
    /// |-------------------------|-----------------------------------|--------------------------------------------|
    /// | written 5 s ago         | ALIVE                             | ALIVE                                      |
    /// | written 300 s ago       | DEAD, age printed as [44]         | DEAD, age [300]                            |
    /// | written 256 s ago       | ALIVE (256 wraps to 0)            | DEAD, age [256]                            |
    /// | written 1 h in future   | ALIVE                             | ALIVE                                      |
    /// | missing                 | ALIVE                             | DEAD, "does not exist"                     |
    /// | empty                   | ALIVE                             | DEAD, "holds no heartbeat (… empty)"       |
    /// | garbage                 | ALIVE                             | DEAD, "holds no heartbeat (… Unix time …)" |
    static let checkCases: [CheckCase] = [
        .init(name: "fresh", content: { "\($0 - 5)\n" }, cloudStack: "ALIVE", ours: .alive),
        .init(name: "stale 300 s", content: { "\($0 - 300)\n" }, cloudStack: "DEAD [44]", ours: .deadByAge(300...302)),
        .init(
            name: "stale 256 s",
            content: { "\($0 - 256)\n" },
            cloudStack: "ALIVE (wraps)",
            ours: .deadByAge(256...258)
        ),
        .init(name: "future", content: { "\($0 + 3600)\n" }, cloudStack: "ALIVE", ours: .alive),
        .init(name: "missing", content: { _ in nil }, cloudStack: "ALIVE", ours: .dead("] does not exist <======")),
        .init(
            name: "empty",
            content: { _ in "" },
            cloudStack: "ALIVE",
            ours: .dead("holds no heartbeat (heartbeat file is empty)")
        ),
        .init(
            name: "garbage",
            content: { _ in "hello\n" },
            cloudStack: "ALIVE",
            ours: .dead("holds no heartbeat (heartbeat file does not hold a Unix time")
        ),
    ]

    @Test("heartbeat -r: verdict lines and exit status", arguments: checkCases)
    func heartbeatCheck(_ testCase: CheckCase) async throws {
        let pool = try TempDir(prefix: "kvmha-cs-pool")
        let file = pool.appending("KVMHA/hb-\(Self.host)")
        if let content = testCase.content(Self.now()) { try Self.writeFile(file, content) }
        let run = try await Self.heartbeat(pool.path, ["-r", "-t", "60"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.count == 1, "\(run)")
        let line = run.stdout.first ?? ""
        switch testCase.ours {
        case .alive:
            #expect(line == Self.alive, "\(run)")
        case .deadByAge(let range):
            let prefix =
                "=====> Considering host as DEAD because last write on [\(pool.path)/KVMHA//hb-\(Self.host)] was ["
            #expect(line.hasPrefix(prefix), "\(run)")
            #expect(line.hasSuffix("] seconds ago, but the max interval is [60] <======"), "\(run)")
            let age = Int64(line.dropFirst(prefix.count).prefix { $0 != "]" }) ?? -1
            #expect(range.contains(age), "\(run)")
        case .dead(let fragment):
            #expect(line.contains("DEAD") && line.contains(fragment), "\(run)")
        }
    }

    // MARK: heartbeat (write)

    @Test("heartbeat: writes the time atomically, creating KVMHA/; prints nothing; exit 0")
    func heartbeatWrite() async throws {
        let pool = try TempDir(prefix: "kvmha-cs-pool")
        let before = Self.now()
        let run = try await Self.heartbeat(pool.path, [])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.isEmpty && run.stderr.isEmpty, "\(run)")
        let text = try String(contentsOf: pool.appending("KVMHA/hb-\(Self.host)"), encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        let written = Int64(text.dropLast()) ?? -1
        #expect(written >= before && written <= Self.now(), "\(text)")
        let left = try FileManager.default.contentsOfDirectory(atPath: pool.appending("KVMHA").path)
        #expect(left == ["hb-\(Self.host)"], "no temporary file left behind")

        // And a check of what we wrote reads ALIVE.
        let check = try await Self.heartbeat(pool.path, ["-r", "-t", "60"])
        #expect(check.stdout == [Self.alive], "\(check)")
    }

    @Test("heartbeat: a KVMHA folder that cannot be created is 'Failed to create', exit 2")
    func heartbeatCreateFails() async throws {
        let pool = try TempDir(prefix: "kvmha-cs-pool")
        let missing = pool.appending("no-such-mount").path
        let run = try await Self.heartbeat(missing, [])
        #expect(run.status == 2, "\(run)")
        #expect(run.stdout.first?.hasPrefix("Failed to create \(missing)/KVMHA//hb-\(Self.host)") == true, "\(run)")
        #expect(!FileManager.default.fileExists(atPath: missing), "the mount point is never created")
    }

    /// | situation            | script                                   | ours                                |
    /// |----------------------|------------------------------------------|-------------------------------------|
    /// | no -i                | exit 1, nothing printed                  | exit 1, nothing on stdout           |
    /// | unknown option       | help, exit 1                             | reason on stderr, exit 1            |
    /// | -m not a mount point | remounts it, kills qemu using it (write) | refuses: exit 1 (write), 69 (check) |
    @Test("heartbeat: the scripts' early exits; an unmounted -m is refused, never remounted")
    func heartbeatEarlyExitsAndUnmounted() async throws {
        let pool = try TempDir(prefix: "kvmha-cs-pool")
        let noI = try await Self.kvmha(["cloudstack", "heartbeat", "-m", pool.path, "-h", Self.host])
        #expect(noI.status == 1 && noI.stdout.isEmpty, "\(noI)")
        let unknown = try await Self.heartbeat(pool.path, ["-x"])
        #expect(unknown.status == 1 && unknown.stdout.isEmpty, "\(unknown)")

        let write = try await Self.heartbeat(pool.path, [], unmounted: false)
        #expect(write.status == 1, "\(write)")
        #expect(write.stdout.first?.contains("is not a mount point") == true, "\(write)")
        #expect(!FileManager.default.fileExists(atPath: pool.appending("KVMHA").path), "nothing written to local disk")

        let check = try await Self.heartbeat(pool.path, ["-r", "-t", "60"], unmounted: false)
        #expect(check.status == 69 && check.stdout.isEmpty, "no verdict, never DEAD: \(check)")
        #expect(check.stderr.contains { $0.contains("is not a mount point") }, "\(check)")
    }

    @Test("heartbeat --help: usage, exit 0; -h stays the host option")
    func heartbeatHelp() async throws {
        let run = try await Self.kvmha(["cloudstack", "heartbeat", "--help"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains { $0.contains("getopts 'i:p:m:h:t:rc'") }, "\(run)")
    }

    // MARK: heartbeat -c (fence)

    /// | fenceAction | kvmheartbeat.sh -c                      | kvmha cloudstack heartbeat -c               |
    /// |-------------|-----------------------------------------|---------------------------------------------|
    /// | (any)       | logs, sync, sleep 5, sysrq b (reset)    | as fenceAction says:                        |
    /// | none        |                                         | logs "nothing done", exit 0                 |
    /// | log         |                                         | logs "would now reboot", exit 0             |
    /// | dry-run     |                                         | writes STATEDIR/fenced, exit 0              |
    /// | reboot      |                                         | sync, fenceDelay, sysrq b (not tested here) |
    @Test(
        "heartbeat -c: fenceAction dry-run writes the daemon's marker, none and log do not",
        arguments: ["dry-run", "none", "log"]
    )
    func fence(action: String) async throws {
        let state = try TempDir(prefix: "kvmha-cs-state")
        let config = state.appending("sidecar.yaml")
        try Self.writeFile(config, "fenceAction: \(action)\nstateDir: \(state.path)\n")
        let run = try await Self.heartbeat("/mnt/unused", ["-c", "--config", config.path])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
        #expect(run.stderr.contains { $0.contains("fenceAction is \(action)") }, "\(run)")
        let marker = state.appending("fenced").path
        if action == "dry-run" {
            let text = try String(contentsOfFile: marker, encoding: .utf8)
            #expect(text.hasPrefix("fenced (dry run) at "), "\(text)")
            #expect(run.stderr.contains { $0.contains("dry run: marker written to \(marker)") }, "\(run)")
        } else {
            #expect(!FileManager.default.fileExists(atPath: marker))
        }
    }

    @Test("heartbeat -c: a host in maintenance (kvmha maintenance on) is not fenced, whatever fenceAction says")
    func fenceInMaintenance() async throws {
        let state = try TempDir(prefix: "kvmha-cs-state")
        let config = state.appending("sidecar.yaml")
        try Self.writeFile(config, "fenceAction: dry-run\nstateDir: \(state.path)\n")
        try Self.writeFile(state.appending("maintenance"), #"{"reason":"disk swap","sinceMs":1700000000000}"# + "\n")
        let run = try await Self.heartbeat("/mnt/unused", ["-c", "--config", config.path])
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains { $0.contains("in maintenance (disk swap): not fencing") }, "\(run)")
        #expect(!FileManager.default.fileExists(atPath: state.appending("fenced").path))
    }

    @Test("heartbeat -c: an unreadable config is exit 78 and no fence")
    func fenceBadConfig() async throws {
        let state = try TempDir(prefix: "kvmha-cs-state")
        let run = try await Self.heartbeat("/mnt/unused", ["-c", "--config", state.appending("missing.yaml").path])
        #expect(run.status == 78, "\(run)")
        #expect(run.stderr.contains { $0.contains("cannot read the config file") }, "\(run)")
    }

    // MARK: vm-activity

    struct ActivityCase: Sendable, CustomTestStringConvertible {
        var name: String
        /// The suspect's heartbeat age in seconds; nil: no file.
        var heartbeatAge: Int64?
        /// `-u`.
        var volumes: String
        /// Volume mtimes relative to the suspect time; nil: the file does not exist.
        var mtimes: [String: Int64?] = [:]
        /// An existing memo, relative to the suspect time: (suspect, mtime).
        var memo: (Int64, Int64)?
        /// What kvmvmactivity.sh prints: ALIVE, or which DEAD line.
        var cloudStack: String
        /// Our line: ALIVE, or a fragment of the DEAD line.
        var ours: String
        /// The memo afterwards, relative to the suspect time ("S:L" with L nil for an empty field); nil: unchanged.
        var memoAfter: Int64??
        var testDescription: String { name }
    }

    static let noMemoDead = "does not exists and condition [latestUpdateTime -gt SuspectTime] has not been satisfied"
    static let movedBackDead = "exist, condition [suspectTimeDiff -lt 0] was satisfied"
    static let sincePreviousDead = "exist and conditions [suspectTimeDiff -lt 0] and [latestUpdateTime -gt SuspectTime]"

    /// Same rule, same lines as kvmvmactivity.sh for every case here: the drop-in differs only where storage
    /// cannot be read (see the frozen pool below) and on files that are not what they should be.
    static let activityCases: [ActivityCase] = [
        .init(
            name: "fresh heartbeat",
            heartbeatAge: 10,
            volumes: "v1",
            mtimes: ["v1": -100],
            cloudStack: "ALIVE",
            ours: alive,
            memoAfter: .none
        ),
        .init(
            name: "stale heartbeat, empty -u",
            heartbeatAge: 600,
            volumes: "",
            cloudStack: "DEAD due to empty UUIDList",
            ours: "DEAD due to empty UUIDList",
            memoAfter: .none
        ),
        .init(
            name: "no memo, a volume written after the suspect time",
            heartbeatAge: 600,
            volumes: "v1,v2",
            mtimes: ["v1": -100, "v2": 30],
            cloudStack: "ALIVE",
            ours: alive,
            memoAfter: .some(30)
        ),
        .init(
            name: "no memo, volumes older than the suspect time",
            heartbeatAge: 600,
            volumes: "v1,v2",
            mtimes: ["v1": -100, "v2": 0],
            cloudStack: "DEAD (no ac- file)",
            ours: noMemoDead,
            memoAfter: .some(0)
        ),
        .init(
            name: "no heartbeat file, no volume files",
            heartbeatAge: nil,
            volumes: "v1",
            cloudStack: "DEAD (no ac- file), memo S::C",
            ours: noMemoDead,
            memoAfter: .some(nil)
        ),
        .init(
            name: "memo: written since the previous check",
            heartbeatAge: 600,
            volumes: "v1",
            mtimes: ["v1": -40],
            memo: (-60, -50),
            cloudStack: "ALIVE",
            ours: alive,
            memoAfter: .some(-40)
        ),
        .init(
            name: "memo: not written since the previous check",
            heartbeatAge: 600,
            volumes: "v1",
            mtimes: ["v1": -50],
            memo: (-60, -50),
            cloudStack: "DEAD (ac- file, no write since)",
            ours: sincePreviousDead,
            memoAfter: .some(-50)
        ),
        .init(
            name: "memo with a later suspect time, nothing written since this one",
            heartbeatAge: 600,
            volumes: "v1",
            mtimes: ["v1": -10],
            memo: (100, -200),
            cloudStack: "DEAD (suspect time moved back)",
            ours: movedBackDead,
            memoAfter: .some(-10)
        ),
    ]

    @Test("vm-activity: verdict lines, the memo in CloudStack's format, exit 0", arguments: activityCases)
    func vmActivity(_ testCase: ActivityCase) async throws {
        let pool = try TempDir(prefix: "kvmha-cs-pool")
        let now = Self.now()
        let suspect = now - 300
        let checker = now - 1
        // The folder exists on any pool in use (the script does not create it for the memo either).
        try FileManager.default.createDirectory(at: pool.appending("KVMHA"), withIntermediateDirectories: true)
        if let age = testCase.heartbeatAge {
            try Self.writeFile(pool.appending("KVMHA/hb-\(Self.host)"), "\(now - age)\n")
        }
        for (name, offset) in testCase.mtimes {
            guard let offset else { continue }
            try Self.writeFile(pool.appending(name), "disk")
            try Self.setMtime(pool.appending(name), suspect + offset)
        }
        let memoURL = pool.appending("KVMHA/ac-\(Self.host)")
        var memoBefore: String?
        if let (memoSuspect, memoMtime) = testCase.memo {
            memoBefore = "\(suspect + memoSuspect):\(suspect + memoMtime):\(checker - 60)\n"
            try Self.writeFile(memoURL, memoBefore!)
        }
        let run = try await Self.kvmha([
            "cloudstack", "vm-activity", "-i", "10.0.0.9", "-p", "/export", "-m", pool.path, "-h", Self.host,
            "-u", testCase.volumes, "-t", "\(checker)", "-d", "\(suspect)", "--allow-unmounted",
        ])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.count == 1, "\(run)")
        let line = run.stdout.first ?? ""
        if testCase.ours == Self.alive {
            #expect(line == Self.alive, "\(run)")
        } else {
            #expect(line.hasPrefix("=====> Considering host as DEAD"), "\(run)")
            #expect(line.contains(testCase.ours), "\(run)")
        }
        let memoAfter = try? String(contentsOf: memoURL, encoding: .utf8)
        switch testCase.memoAfter {
        case .none:
            #expect(memoAfter == memoBefore, "memo untouched")
        case .some(let mtime):
            #expect(memoAfter == "\(suspect):\(mtime.map { String(suspect + $0) } ?? ""):\(checker)\n")
        }
        let temporaries = (try? FileManager.default.contentsOfDirectory(atPath: pool.appending("KVMHA").path)) ?? []
        #expect(!temporaries.contains { $0.hasPrefix(".") }, "no temporary file left behind: \(temporaries)")
    }

    @Test("vm-activity: no -i or no -d is exit 2, nothing printed, as the script")
    func vmActivityEarlyExits() async throws {
        let noD = try await Self.kvmha(["cloudstack", "vm-activity", "-i", "x", "-m", "/mnt/p", "-h", Self.host])
        #expect(noD.status == 2 && noD.stdout.isEmpty, "\(noD)")
        let noI = try await Self.kvmha(["cloudstack", "vm-activity", "-d", "1", "-m", "/mnt/p", "-h", Self.host])
        #expect(noI.status == 2 && noI.stdout.isEmpty, "\(noI)")
    }

    // MARK: a real mount, and a frozen one

    @Test("a mounted pool needs no flag: write, check and activity through a FUSE mount")
    func throughAMount() async throws {
        let mount = try FreezableMount()
        defer { mount.stop() }
        let root = mount.mountpoint.path
        let write = try await Self.heartbeat(root, [], unmounted: false)
        #expect(write.status == 0, "\(write)")
        let check = try await Self.heartbeat(root, ["-r", "-t", "60"], unmounted: false)
        #expect(check.stdout == [Self.alive], "\(check)")
        let activity = try await Self.kvmha([
            "cloudstack", "vm-activity", "-i", "x", "-p", "/e", "-m", root, "-h", Self.host, "-u", "v1",
            "-t", "\(Self.now())", "-d", "\(Self.now() - 300)",
        ])
        #expect(activity.stdout == [Self.alive], "fresh heartbeat: \(activity)")
    }

    /// | frozen pool | script                            | ours                                          |
    /// |-------------|-----------------------------------|-----------------------------------------------|
    /// | write       | hangs until the agent's timeout   | "Failed to write … storage did not answer", 1 |
    /// | check (-r)  | hangs (agent: error → alive)      | no verdict within --io-timeout, exit 69       |
    /// | vm-activity | hangs (agent: timeout → activity) | no verdict within --io-timeout, exit 69       |
    ///
    /// On a frozen FUSE mount the thread blocked in the kernel keeps the process from being reaped until the
    /// mount answers (on NFS the wait is killable), so the test waits for the error line, thaws, then reads
    /// the exit status.
    @Test("frozen pool: each command gives a clear error within --io-timeout, never a hang")
    func frozenPool() async throws {
        let mount = try FreezableMount()
        defer { mount.stop() }
        let root = mount.mountpoint.path
        try Self.writeFile(mount.backing.appendingPathComponent("KVMHA/hb-\(Self.host)"), "\(Self.now() - 600)\n")
        let commands: [(name: String, arguments: [String], status: Int32, line: String)] = [
            (
                "write",
                ["cloudstack", "heartbeat", "-i", "x", "-m", root, "-h", Self.host, "--io-timeout", "500ms"], 1,
                "Failed to write"
            ),
            (
                "check",
                [
                    "cloudstack", "heartbeat", "-i", "x", "-m", root, "-h", Self.host, "-r", "-t", "60",
                    "--io-timeout", "500ms",
                ], 69, "no verdict"
            ),
            (
                "vm-activity",
                [
                    "cloudstack", "vm-activity", "-i", "x", "-m", root, "-h", Self.host, "-u", "v1", "-t", "1",
                    "-d", "\(Self.now() - 300)", "--io-timeout", "500ms",
                ], 69, "no verdict"
            ),
        ]
        for command in commands {
            try mount.freeze()
            let process = try ChildProcess(
                executable: try kvmhaBinary(),
                arguments: command.arguments,
                label: "kvmha \(command.name)"
            )
            // A hang guard, not a timing assertion: the error comes after --io-timeout (500 ms).
            let line = try await process.waitForLine(containing: command.line, timeout: .seconds(20))
            #expect(line.contains("storage did not answer"), "\(command.name): \(process.transcript)")
            #expect(!process.lines().contains { $0.contains("ALIVE") || $0.contains("DEAD") }, "\(command.name)")
            try mount.thaw()
            let status = try await process.waitForExit(timeout: .seconds(30))
            #expect(status == command.status, "\(command.name): \(process.transcript)")
        }
    }
}
