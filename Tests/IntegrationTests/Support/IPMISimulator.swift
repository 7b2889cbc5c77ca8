import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A simulated BMC: OpenIPMI's `ipmi_sim` serving IPMI 2.0 (RMCP+) on a free UDP port of 127.0.0.1, with a
/// chassis whose power state lives in a file the test sets (`setPower`). The configuration is written
/// here; `stop()` kills it (and so does dropping the last reference, through `ChildProcess`).
final class IPMISimulator: Sendable {
    static let user = "admin"
    static let password = "secret"

    let port: Int
    let folder: TempDir
    let process: ChildProcess
    private var powerFile: String { folder.appending("power").path }

    /// Starts the simulator with the chassis powered on or off and waits (bounded) until it answers.
    init(poweredOn: Bool = true) throws {
        guard let simulator = ChildProcess.findExecutable("ipmi_sim") else {
            throw HarnessError("ipmi_sim is not installed (Debian package openipmi) — \(HarnessError.installHint)")
        }
        guard ChildProcess.findExecutable("ipmitool") != nil else {
            throw HarnessError("ipmitool is not installed — \(HarnessError.installHint)")
        }
        folder = try TempDir(prefix: "kvmha-ipmi-sim")
        port = try Self.freeUDPPort()
        let stateDir = folder.appending("state").path
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        let script = folder.appending("chassis").path
        // ipmi_sim runs `SCRIPT 0x20 get power` and expects `power:0|1`; `set power 0|1` and `set reset 1`
        // change the state.
        try Self.write(
            """
            #!/bin/sh
            state="\(folder.appending("power").path)"
            shift
            op="$1"; shift
            case "$op" in
            get)
                for item in "$@"; do
                    [ "$item" = power ] && echo "power:$(cat "$state")"
                done ;;
            set)
                while [ $# -ge 2 ]; do
                    [ "$1" = power ] && echo "$2" > "$state"
                    shift 2
                done ;;
            esac
            exit 0

            """,
            to: script, mode: 0o755)
        try Self.write(
            """
            name "kvmha-test-bmc"
            set_working_mc 0x20
              startlan 1
                addr 127.0.0.1 \(port)
                priv_limit admin
                allowed_auths_callback none md2 md5 straight
                allowed_auths_user none md2 md5 straight
                allowed_auths_operator none md2 md5 straight
                allowed_auths_admin none md2 md5 straight
                guid a123456789abcdefa123456789abcdef
              endlan
              chassis_control "\(script) 0x20"
              user 2 true "\(Self.user)" "\(Self.password)" admin 10 none md2 md5 straight

            """,
            to: folder.appending("lan.conf").path)
        try Self.write(
            """
            mc_setbmc 0x20
            mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
            mc_enable 0x20

            """,
            to: folder.appending("bmc.emu").path)
        try Self.write(poweredOn ? "1\n" : "0\n", to: folder.appending("power").path)
        process = try ChildProcess(
            executable: simulator,
            arguments: [
                "-c", folder.appending("lan.conf").path, "-f", folder.appending("bmc.emu").path, "-s", stateDir, "-n",
            ],
            label: "ipmi_sim :\(port)")
        do {
            try waitUntilAnswering()
        } catch {
            stop()
            throw error
        }
    }

    /// Sets the chassis power state the simulator reports from now on.
    func setPower(on: Bool) throws {
        let temporary = folder.appending("power.new").path
        try Self.write(on ? "1\n" : "0\n", to: temporary)
        guard rename(temporary, powerFile) == 0 else {
            throw HarnessError("rename \(temporary): \(String(cString: strerror(errno)))")
        }
    }

    /// Freezes the simulator (SIGSTOP): it keeps its port and answers nothing, like a hung BMC.
    func freeze() { process.kill(signal: SIGSTOP) }
    func thaw() { process.kill(signal: SIGCONT) }

    func stop() {
        process.kill(signal: SIGKILL)
        _ = process.waitForExitBlocking(timeout: .seconds(10))
    }

    /// A credentials file for the daemon (`user=`/`password=`, mode 0600) in `folder`.
    static func credentialsFile(in folder: TempDir, password: String = IPMISimulator.password) throws -> String {
        let path = folder.appending("bmc-credentials").path
        try write("# the simulated BMC\nuser=\(user)\npassword=\(password)\n", to: path, mode: 0o600)
        return path
    }

    /// Polls with ipmitool until the simulator answers; a bounded wait for its start.
    private func waitUntilAnswering() throws {
        let tool = ChildProcess.findExecutable("ipmitool")!
        let passwordFile = folder.appending("password").path
        try Self.write(Self.password + "\n", to: passwordFile, mode: 0o600)
        let deadline = ContinuousClock.now + .seconds(20)
        var last: [String] = []
        while ContinuousClock.now < deadline {
            guard process.isRunning else { break }
            let (status, lines) = try ChildProcess.run(
                tool,
                [
                    "-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H", "127.0.0.1", "-p", String(port), "-U",
                    Self.user, "-f", passwordFile, "chassis", "power", "status",
                ],
                timeout: .seconds(10))
            if status == .exited(0), lines.contains(where: { $0.hasPrefix("Chassis Power is") }) { return }
            last = lines
        }
        throw HarnessError(
            "ipmi_sim on UDP port \(port) did not answer ipmitool within 20 s (last: \(last))\n\(process.transcript)")
    }

    /// A UDP port nothing listens on now (the kernel's pick; a race with other programs is harmless here).
    static func freeUDPPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw HarnessError("bind: \(String(cString: strerror(errno)))") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw HarnessError("getsockname: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        guard chmod(path, mode) == 0 else { throw HarnessError("chmod \(path): \(String(cString: strerror(errno)))") }
    }
}
