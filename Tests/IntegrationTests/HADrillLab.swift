import Foundation
import HeartbeatCore

#if canImport(Glibc)
import Glibc
#endif

/// A command run to its end by the drill (`ip netns exec …`, `drill-net.sh …`, `curl`).
struct DrillCommandResult: Sendable {
    let exitCode: Int32
    let stdout: String
    let stderr: String
}

enum DrillCommand {
    /// Runs `executable ARGUMENTS` and returns its exit code and output. Past `timeout` the process group is
    /// killed and the call fails: a hang guard, not a timing assertion.
    static func run(
        _ executable: String,
        _ arguments: [String],
        timeout: Duration = .seconds(60)
    ) async throws
        -> DrillCommandResult
    {
        let process = try ChildProcess(
            executable: URL(fileURLWithPath: executable),
            arguments: arguments,
            label: ([URL(fileURLWithPath: executable).lastPathComponent] + arguments.prefix(3)).joined(separator: " ")
        )
        let code: Int32
        do {
            code = try await process.waitForExit(timeout: timeout)
        } catch {
            process.killProcessGroup()
            _ = process.waitForExitBlocking(timeout: .seconds(10))
            throw error
        }
        return DrillCommandResult(
            exitCode: code,
            stdout: process.lines(after: 0, source: .stdout).joined(separator: "\n"),
            stderr: process.lines(after: 0, source: .stderr).joined(separator: "\n")
        )
    }

    /// Blocking form for clean-up paths (no `await` in `defer`).
    @discardableResult
    static func runBlocking(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(60)) -> Int32? {
        guard let process = try? ChildProcess(executable: URL(fileURLWithPath: executable), arguments: arguments) else {
            return nil
        }
        guard let status = process.waitForExitBlocking(timeout: timeout) else {
            process.killProcessGroup()
            _ = process.waitForExitBlocking(timeout: .seconds(10))
            return nil
        }
        return status.code
    }
}

/// One VM of the drill: a test-driver domain whose "disk" is a file in the pool's root that the drill touches
/// while the VM runs, so the activity check sees real volume mtimes.
struct DrillVM: Sendable, Hashable {
    let name: String
    let uuid: String

    /// The volume file in the pool's root (CloudStack's activity check names volumes by file name).
    var volume: String { "\(name)-ROOT.qcow2" }

    var domainXML: String {
        """
        <domain type='test'>
          <name>\(name)</name>
          <uuid>\(uuid)</uuid>
          <memory unit='MiB'>512</memory>
          <os><type arch='x86_64'>hvm</type></os>
        </domain>
        """
    }
}

/// One simulated KVM host: a network namespace with a management and a storage link, a private libvirtd
/// (test driver), and a `kvmha serve` started inside the namespace.
final class DrillHost: @unchecked Sendable {
    // @unchecked: `sidecar` is only replaced by the drill's one task, between steps.
    let letter: String
    let ip: String
    let storageIP: String
    let namespace: String
    let vms: [DrillVM]
    let token: TokenFile
    /// `Authorization: Bearer …`, for `curl -H @file` (the token never appears on a command line).
    let headerFile: String
    let stateDir: String
    let libvirtURI: String
    private let sidecarBox = Locked<ChildProcess?>(nil)

    init(
        letter: String,
        ip: String,
        storageIP: String,
        namespace: String,
        vms: [DrillVM],
        folder: TempDir,
        labDir: String
    )
        throws
    {
        self.letter = letter
        self.ip = ip
        self.storageIP = storageIP
        self.namespace = namespace
        self.vms = vms
        token = try TokenFile.make(in: folder, name: "token-\(letter)")
        headerFile = folder.appending("auth-\(letter)").path
        try Data("Authorization: Bearer \(token.token)\n".utf8).write(to: URL(fileURLWithPath: headerFile))
        guard chmod(headerFile, 0o600) == 0 else { throw HarnessError("chmod \(headerFile) failed") }
        stateDir = folder.appending("state-\(letter)").path
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        libvirtURI = "test+unix:///default?socket=\(labDir)/libvirt-\(letter.lowercased())/sock/libvirt-sock"
    }

    var name: String { "host \(letter) (\(ip))" }
    var sidecar: ChildProcess? { sidecarBox.withLock { $0 } }
    var fenceMarker: String { stateDir + "/fenced" }

    func setSidecar(_ process: ChildProcess?) {
        sidecarBox.withLock { $0 = process }
    }
}

/// The drill's data centre: namespaces, bridges, NFS server and libvirtds from `Tests/Harness/drill/drill-net.sh`,
/// three hosts with their sidecars, and the disk "writes" of running VMs. ``with(_:)`` takes every part down
/// however the drill ends; the script also watches this process and cleans up by itself if it dies.
final class DrillLab: @unchecked Sendable {
    // @unchecked: the fields are fixed after init; the mutable parts are `Locked`.
    static let script = RepositoryPaths.root.appendingPathComponent("Tests/Harness/drill/drill-net.sh").path
    static let apiPort = 7733
    static let poolID = "5f0c1d2e-drill-pool"

    /// Fast, with the default ratios (5 s / 4 s / 30 s / 20 s + 5 s, scaled by 1/5 and rounded to keep the rules:
    /// ioTimeout < interval, deadAfter ≥ 3 × interval, fenceAfter + fenceDelay < deadAfter).
    struct Timing: Sendable {
        var interval = 1.0
        var ioTimeout = 0.8
        var deadAfter = 6.0
        var fenceAfter = 4.0
        var fenceDelay = 1.0

        var arguments: [String] {
            [
                "--interval", "\(Int(interval * 1000))ms", "--io-timeout", "\(Int(ioTimeout * 1000))ms",
                "--dead-after", "\(Int(deadAfter * 1000))ms", "--fence-after", "\(Int(fenceAfter * 1000))ms",
                "--fence-delay", "\(Int(fenceDelay * 1000))ms", "--fence-action", "dry-run",
            ]
        }
    }

    let folder: TempDir
    let labDir: String
    let environment: [String: String]
    let hosts: [DrillHost]
    let managerNamespace: String
    let managerIP: String
    let storageIP: String
    let nfsURL: String
    let exportDir: String
    let timing: Timing
    /// Whether this `kvmha serve` has `--peer-probe` (issue 8's step 5 contract); checked from `serve --help`.
    let peerProbe: Bool
    private let touched = Locked<Set<String>>([])
    /// Every sidecar started, in order (B twice), for the logs.
    private let started = Locked<[ChildProcess]>([])
    private let toucher = Locked<Task<Void, Never>?>(nil)

    var a: DrillHost { hosts[0] }
    var b: DrillHost { hosts[1] }
    var c: DrillHost { hosts[2] }

    private init(folder: TempDir, environment: [String: String], timing: Timing, peerProbe: Bool) throws {
        func value(_ key: String) throws -> String {
            guard let value = environment[key], !value.isEmpty else {
                throw HarnessError("drill-net.sh up printed no \(key): \(environment)")
            }
            return value
        }
        self.folder = folder
        labDir = folder.appending("lab").path
        self.environment = environment
        self.timing = timing
        self.peerProbe = peerProbe
        managerNamespace = try value("DRILL_NS_MANAGER")
        managerIP = try value("DRILL_IP_MANAGER")
        storageIP = try value("DRILL_IP_STORAGE")
        nfsURL = try value("DRILL_NFS_URL")
        exportDir = try value("DRILL_EXPORT_DIR")
        let plan: [(String, [DrillVM])] = [
            ("A", [Self.vm("i-2-101-VM", 0x101), Self.vm("i-2-102-VM", 0x102)]),
            ("B", [Self.vm("i-3-201-VM", 0x201), Self.vm("i-3-202-VM", 0x202), Self.vm("i-3-203-VM", 0x203)]),
            ("C", [Self.vm("i-4-301-VM", 0x301)]),
        ]
        hosts = try plan.map { letter, vms in
            try DrillHost(
                letter: letter,
                ip: try value("DRILL_IP_\(letter)"),
                storageIP: try value("DRILL_STORAGE_IP_\(letter)"),
                namespace: try value("DRILL_NS_\(letter)"),
                vms: vms,
                folder: folder,
                labDir: folder.appending("lab").path
            )
        }
    }

    static func vm(_ name: String, _ number: Int) -> DrillVM {
        DrillVM(name: name, uuid: String(format: "8d5e0c1a-4b7f-4c2d-9e31-%012x", number))
    }

    /// Builds the lab, runs `body`, and takes everything down (also when `body` throws).
    static func with<T>(timing: Timing = Timing(), _ body: (DrillLab) async throws -> T) async throws -> T {
        let folder = try TempDir(prefix: "kvmha-drill")
        // The libvirtds run as nobody (run-libvirtd.sh) and must reach their state folders inside.
        guard chmod(folder.path, 0o755) == 0 else { throw HarnessError("chmod \(folder.path) failed") }
        let labDir = folder.appending("lab").path
        let help = try await DrillCommand.run(try kvmhaBinary().path, ["serve", "--help"])
        let peerProbe = (help.stdout + help.stderr).contains("--peer-probe")
        let lab: DrillLab
        do {
            let up = try await DrillCommand.run(
                "/bin/bash",
                [script, "up", labDir, "--watch", String(getpid())],
                timeout: .seconds(120)
            )
            guard up.exitCode == 0 else {
                throw HarnessError("drill-net.sh up exited \(up.exitCode):\n\(up.stderr)")
            }
            var values: [String: String] = [:]
            for line in up.stdout.split(separator: "\n") {
                guard let eq = line.firstIndex(of: "=") else { continue }
                values[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
            lab = try DrillLab(folder: folder, environment: values, timing: timing, peerProbe: peerProbe)
        } catch {
            DrillCommand.runBlocking("/bin/bash", [script, "down", labDir])
            throw error
        }
        do {
            let result = try await body(lab)
            lab.tearDown()
            return result
        } catch {
            lab.tearDown()
            throw error
        }
    }

    /// Stops the sidecars, the disk writer, and everything in the namespaces; deletes the namespaces.
    func tearDown() {
        toucher.withLock { $0?.cancel() }
        for host in hosts {
            if let sidecar = host.sidecar {
                sidecar.kill(signal: SIGKILL)
                _ = sidecar.waitForExitBlocking(timeout: .seconds(10))
            }
        }
        if DrillCommand.runBlocking("/bin/bash", [Self.script, "down", labDir]) != 0 {
            FileHandle.standardError.write(Data("HA drill: drill-net.sh down \(labDir) failed\n".utf8))
        }
    }

    /// Writes every sidecar's output to `directory` (`kvmha-A.log`, `kvmha-B.log`, `kvmha-B-2.log`, …).
    func saveLogs(to directory: String) {
        var seen: [String: Int] = [:]
        for process in started.withLock({ $0 }) {
            let label = process.label.replacingOccurrences(of: "kvmha ", with: "")
            seen[label, default: 0] += 1
            let suffix = seen[label]! > 1 ? "-\(seen[label]!)" : ""
            let path = directory + "/kvmha-\(label)\(suffix).log"
            try? Data((process.transcript + "\n").utf8).write(to: URL(fileURLWithPath: path))
        }
        let copies =
            [("storage/ganesha.log", "ganesha.log")]
            + hosts.map { host in
                ("libvirt-\(host.letter.lowercased())/events.log", "libvirt-events-\(host.letter).log")
            }
        for (source, name) in copies {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
            try? FileManager.default.copyItem(atPath: labDir + "/" + source, toPath: directory + "/" + name)
        }
    }

    // MARK: Hosts

    /// Starts `kvmha serve` inside the host's namespace and waits until its API listens.
    func startSidecar(_ host: DrillHost) async throws -> ChildProcess {
        var arguments = [
            "netns", "exec", host.namespace, try kvmhaBinary().path, "serve", "--host-ip", host.ip,
            "--pool", "\(Self.poolID)=\(nfsURL)", "--state-dir", host.stateDir, "--libvirt-uri", host.libvirtURI,
            "--log-level", "debug",
        ]
        arguments += timing.arguments
        if peerProbe { arguments.append("--peer-probe") }
        // `ip netns exec` execs the program: the pid is kvmha's own.
        let process = try ChildProcess(
            executable: URL(fileURLWithPath: "/usr/sbin/ip"),
            arguments: arguments,
            environment: [
                "KVMHA_API_ADDRESS": host.ip, "KVMHA_API_PORT": String(Self.apiPort),
                "KVMHA_API_TOKEN_FILE": host.token.path,
            ],
            label: "kvmha \(host.letter)"
        )
        host.setSidecar(process)
        started.withLock { $0.append(process) }
        try await process.waitForLine(containing: "API listening on http://\(host.ip):\(Self.apiPort)")
        return process
    }

    /// Runs `virsh ARGUMENTS` against the host's libvirtd.
    func virsh(_ host: DrillHost, _ arguments: [String]) async throws -> DrillCommandResult {
        let result = try await DrillCommand.run(
            "/bin/bash",
            [Self.script, "virsh", labDir, host.letter.lowercased()] + arguments
        )
        guard result.exitCode == 0 else {
            throw HarnessError(
                "virsh \(arguments.joined(separator: " ")) on \(host.name) exited \(result.exitCode): \(result.stderr)"
            )
        }
        return result
    }

    /// Starts `vms` (transient test-driver domains) in the host's libvirtd.
    func startVMs(_ vms: [DrillVM], on host: DrillHost) async throws {
        for vm in vms {
            let file = folder.appending("\(vm.name)-\(host.letter).xml").path
            try Data(vm.domainXML.utf8).write(to: URL(fileURLWithPath: file))
            _ = try await virsh(host, ["create", file])
        }
    }

    /// Restarts the host's libvirtd, empty.
    func restartLibvirtd(_ host: DrillHost) async throws {
        let result = try await DrillCommand.run(
            "/bin/bash",
            [Self.script, "libvirtd", labDir, host.letter.lowercased()]
        )
        guard result.exitCode == 0 else { throw HarnessError("restarting libvirtd of \(host.name): \(result.stderr)") }
    }

    /// Both links of the host up again, after `powerOff`.
    func powerOn(_ host: DrillHost) async throws {
        let result = try await DrillCommand.run(
            "/bin/bash",
            [Self.script, "poweron", labDir, host.letter.lowercased()]
        )
        guard result.exitCode == 0 else { throw HarnessError("power-on of \(host.name): \(result.stderr)") }
    }

    /// SIGKILL to every process in the host's namespace (its sidecar, libvirtd and so its VMs), then both of its
    /// links down: a host without power answers nothing on the network.
    func powerOff(_ host: DrillHost) async throws {
        host.sidecar?.kill(signal: SIGKILL)
        let result = try await DrillCommand.run(
            "/bin/bash",
            [Self.script, "poweroff", labDir, host.letter.lowercased()]
        )
        guard result.exitCode == 0 else { throw HarnessError("power-off of \(host.name): \(result.stderr)") }
        if let sidecar = host.sidecar { _ = try await sidecar.waitForExit(timeout: .seconds(10)) }
    }

    /// Sets the host's management or storage link up or down (inside its namespace).
    func setLink(_ host: DrillHost, _ link: String, up: Bool) async throws {
        let result = try await DrillCommand.run(
            "/bin/bash",
            [Self.script, "link", labDir, host.letter.lowercased(), link, up ? "up" : "down"]
        )
        guard result.exitCode == 0 else { throw HarnessError("link \(link) of \(host.name): \(result.stderr)") }
    }

    // MARK: Disk writes

    /// Creates every VM's volume file and starts touching the given volumes twice per second.
    func startDiskWrites(_ volumes: Set<String>) throws {
        for vm in hosts.flatMap(\.vms) {
            let path = exportDir + "/" + vm.volume
            guard FileManager.default.createFile(atPath: path, contents: Data("qcow2 stand-in\n".utf8)) else {
                throw HarnessError("cannot create \(path)")
            }
        }
        touched.withLock { $0 = volumes }
        let exportDir = exportDir
        let touched = touched
        toucher.withLock {
            $0 = Task.detached {
                while !Task.isCancelled {
                    // Under the lock: once `stopDiskWrites` returns, no write of those volumes happens any more.
                    touched.withLock { volumes in
                        for volume in volumes { _ = utimes(exportDir + "/" + volume, nil) }
                    }
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
        }
    }

    func resumeDiskWrites(_ volumes: [String]) {
        touched.withLock { $0.formUnion(volumes) }
    }

    func stopDiskWrites(_ volumes: [String]) {
        touched.withLock { $0.subtract(volumes) }
    }

    /// The host's record as it lies in the exported folder (what every reader gets through NFS).
    func record(of host: DrillHost) -> HeartbeatRecord? {
        readRecord(pool: URL(fileURLWithPath: exportDir), host: host.ip)
    }
}
