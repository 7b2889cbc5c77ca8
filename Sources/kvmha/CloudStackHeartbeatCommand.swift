import ArgumentParser
import Foundation
import HeartbeatCore
import Logging
import Sidecar

#if canImport(Glibc)
import Glibc
#endif

/// `kvmha cloudstack heartbeat`: CloudStack's `kvmheartbeat.sh`, right.
struct CloudStackHeartbeatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heartbeat",
        abstract: "Write or check a host's CloudStack heartbeat file; -c fences by the configured policy.",
        usage: "kvmha cloudstack heartbeat -i NFS_IP -p EXPORT -m MOUNTPOINT -h HOST_IP [-r -t SECS] [-c]",
        discussion: usage,
        // `-h` is CloudStack's host option here, so no short help name; `--help` is read below.
        helpNames: []
    )

    static let usage = """
        Takes kvmheartbeat.sh's arguments (getopts 'i:p:m:h:t:rc'):
          -i NFS_IP      required (exit 1 without it, as the script); not used: kvmha never mounts
          -p EXPORT      accepted, not used
          -m MOUNTPOINT  the pool's mount point; must be mounted (the script would remount it)
          -h HOST_IP     the host whose file is MOUNTPOINT/KVMHA/hb-HOST_IP
          -r -t SECS     check: "=====> ALIVE <=====" or a line with DEAD when the file's age is above SECS,
                         or when it is missing, empty or not a Unix time (the script says ALIVE then)
          -c             the agent could not write the heartbeat: act by fenceAction of the daemon's config
                         (none, log, dry-run: write the marker STATEDIR/fenced, reboot: sync, fenceDelay, sysrq b)
        Without -r or -c: write the current Unix time to the file, atomically (temporary file + rename).
        Our own options: --io-timeout DURATION (each storage call, default 3s), --config FILE (for -c; default
        /etc/kvmha/sidecar.yaml), --allow-unmounted (accept a MOUNTPOINT that is not a mount point), --help.
        Exit status: 0 written / verdict printed / fence action done; 1 usage, no -i, the write failed or timed
        out, the mount point is not mounted; 2 the KVMHA folder could not be created ("Failed to create …");
        69 check: no verdict, the file could not be read (error or timeout, reason on stderr); 78 -c: config error.
        """

    @Argument(parsing: .captureForPassthrough, help: "kvmheartbeat.sh's arguments.")
    var arguments: [String] = []

    func run() async throws {
        let (request, extensions) = CloudStackDropInRequest.heartbeat(arguments)
        switch request {
        case .help:
            CloudStackCommand.printLine(Self.usage)
        case .exit(let status, let message):
            CloudStackCommand.printReason("heartbeat", message)
            throw ExitCode(status)
        case .writeHeartbeat(let target):
            try await write(target, extensions)
        case .checkHeartbeat(let target, let maxIntervalSeconds):
            try await check(target, maxIntervalSeconds: maxIntervalSeconds, extensions)
        case .fence:
            try await fence(extensions)
        case .vmActivity:
            preconditionFailure("the heartbeat arguments never ask for the activity check")
        }
    }

    private enum WriteOutcome: Sendable {
        case written
        case folderFailed(PoolIOError)
    }

    private func write(
        _ target: CloudStackDropInRequest.Pool,
        _ extensions: CloudStackDropInRequest.Extensions
    )
        async throws
    {
        let file = CloudStackDropInHeartbeatCheck.scriptPath(mountPoint: target.mountPoint, host: target.host)
        let pool = CloudStackPool(
            mountPoint: target.mountPoint,
            ioTimeout: extensions.ioTimeout,
            allowUnmounted: extensions.allowUnmounted
        )
        defer { pool.stop() }
        let path = PoolLayout.cloudStackHeartbeat(target.host)
        // The daemon's prefix for this host's temporary heartbeat files, so its clean-up also takes ours.
        let temporary =
            "\(PoolLayout.haFolder)/.hb-\(target.host).tmp-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let bytes = CloudStackHeartbeat.encode(unixSeconds: WallClock.nowMs() / 1000)
        let outcome: WriteOutcome
        do {
            outcome = try await pool.call("write heartbeat") { files throws(PoolIOError) -> WriteOutcome in
                do throws(PoolIOError) {
                    try files.replaceAtomically(path, with: bytes, temporaryPath: temporary, durable: false)
                } catch  where error.errno == ENOENT {
                    // No KVMHA folder yet (a fresh pool): create it, as the script's `mkdir -p` does.
                    do throws(PoolIOError) {
                        try files.makeFolder(PoolLayout.haFolder)
                    } catch {
                        return .folderFailed(error)
                    }
                    try files.replaceAtomically(path, with: bytes, temporaryPath: temporary, durable: false)
                }
                return .written
            }
        } catch {
            CloudStackCommand.printLine("Failed to write \(file): \(error)")
            throw ExitCode(1)
        }
        if case .folderFailed(let error) = outcome {
            CloudStackCommand.printLine("Failed to create \(file): \(error)")
            throw ExitCode(2)
        }
    }

    private func check(
        _ target: CloudStackDropInRequest.Pool,
        maxIntervalSeconds: Int64,
        _ extensions: CloudStackDropInRequest.Extensions
    ) async throws {
        let file = CloudStackDropInHeartbeatCheck.scriptPath(mountPoint: target.mountPoint, host: target.host)
        let pool = CloudStackPool(
            mountPoint: target.mountPoint,
            ioTimeout: extensions.ioTimeout,
            allowUnmounted: extensions.allowUnmounted
        )
        defer { pool.stop() }
        let path = PoolLayout.cloudStackHeartbeat(target.host)
        let reading: HeartbeatFileReading
        do {
            reading = try await pool.call("read heartbeat") { files in ActivityProbe.heartbeat(files, path) }
        } catch {
            reading = .unreadable(error.description)
        }
        let verdict = CloudStackDropInHeartbeatCheck.decide(
            reading,
            now: WallClock.nowMs() / 1000,
            maxIntervalSeconds: maxIntervalSeconds,
            file: file
        )
        guard let line = verdict.line else {
            if case .noVerdict(let why) = verdict { CloudStackCommand.printReason("heartbeat", "no verdict: \(why)") }
            throw ExitCode(CloudStackCommand.Status.noVerdict)
        }
        CloudStackCommand.printLine(line)
    }

    /// The agent gave up writing the heartbeat to a pool (after its retries) and asks for the fence. The
    /// script reboots unconditionally; we do what `fenceAction` says.
    private func fence(_ extensions: CloudStackDropInRequest.Extensions) async throws {
        let settings: SidecarSettings
        do {
            settings = try ConfigLoader.load(
                path: extensions.config,
                environment: ProcessInfo.processInfo.environment,
                overrides: [:]
            )
        } catch {
            CloudStackCommand.printReason("heartbeat", "-c: \(error.description)")
            throw ExitCode(CloudStackCommand.Status.config)
        }
        CloudStackCommand.bootstrapLogging()
        let logger = Logger(label: "kvmha.cloudstack")
        // Maintenance (`kvmha maintenance on`) disarms every fence, this one included.
        let maintenance = HostModeStore(stateDir: settings.stateDir, rejoinFor: .zero, logger: logger).mode
        if case .maintenance(let reason) = maintenance {
            let text =
                "kvmha cloudstack heartbeat -c: the CloudStack agent could not write the heartbeat; this host is in maintenance (\(reason.isEmpty ? "no reason given" : reason)): not fencing"
            Self.syslogCritical(text)
            logger.critical("\(text)")
            return
        }
        let action = settings.timing.fenceAction
        let message =
            "kvmha cloudstack heartbeat -c: the CloudStack agent could not write the heartbeat to the storage; "
            + "fenceAction is \(action.rawValue)"
        Self.syslogCritical(message)
        logger.critical("\(message)")
        if action == .reboot {
            // As the script does: sync in the background, wait, then reset. The wait is fenceDelay.
            Fencer.startSync()
            try? await MonotonicSleeper.shared.sleep(for: settings.timing.fenceDelay)
        }
        let done = Fencer.carryOut(
            action,
            markerPath: Fencer.dryRunMarkerPath(stateDir: settings.stateDir),
            reason: "kvmha cloudstack heartbeat -c: the CloudStack agent could not write the heartbeat",
            logger: logger
        )
        if !done { throw ExitCode(1) }
        if action == .reboot {
            // Still here: sysrq did not reset the host.
            logger.critical("the reset through /proc/sysrq-trigger did not happen")
            throw ExitCode(1)
        }
    }

    /// The script logs through `logger -t heartbeat`; we log to syslog as well as to stderr.
    private static func syslogCritical(_ message: String) {
        openlog("kvmha-heartbeat", LOG_PID, LOG_DAEMON)
        message.withCString { text in withVaList([text]) { vsyslog(LOG_CRIT, "%s", $0) } }
        closelog()
    }
}
