import ArgumentParser
import Foundation
import HeartbeatCore
import Sidecar

/// `kvmha cloudstack vm-activity`: CloudStack's `kvmvmactivity.sh`, right.
struct CloudStackVMActivityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm-activity",
        abstract: "Check whether a suspect host's VMs still write to their disks, as kvmvmactivity.sh does.",
        usage:
            "kvmha cloudstack vm-activity -i NFS_IP -p EXPORT -m MOUNTPOINT -h SUSPECT_IP -u VOL1,VOL2 "
            + "-t CHECKER_NOW -d SUSPECT_TIME",
        discussion: usage,
        // `-h` is CloudStack's host option here, so no short help name; `--help` is read below.
        helpNames: []
    )

    static let usage = """
        Takes kvmvmactivity.sh's arguments (getopts 'i:p:m:u:t:h:d:'):
          -i NFS_IP        required (exit 2 without it, as the script); not used
          -p EXPORT        accepted, not used
          -m MOUNTPOINT    the pool's mount point; must be mounted
          -h SUSPECT_IP    the suspect host (its files KVMHA/hb-IP and KVMHA/ac-IP)
          -u VOL1,VOL2     volume file names in the pool's root
          -t CHECKER_NOW   Unix seconds, written into the memo (default: our clock)
          -d SUSPECT_TIME  Unix seconds; required (exit 2 without it, as the script)
        Prints "=====> ALIVE <=====" (heartbeat younger than 61s, or a volume written since the suspect time or
        the previous check) or a line containing DEAD, and rewrites KVMHA/ac-SUSPECT_IP (SUSPECT:MTIME:CHECKER)
        atomically. Our own options: --io-timeout DURATION (each storage call, default 3s), --allow-unmounted,
        --help.
        Exit status: 0 verdict printed; 1 usage; 2 no -i or no -d; 69 no verdict: something on the pool could not
        be read (error, timeout, not mounted) and nothing read showed activity (reason on stderr).
        """

    @Argument(parsing: .captureForPassthrough, help: "kvmvmactivity.sh's arguments.")
    var arguments: [String] = []

    func run() async throws {
        let (request, extensions) = CloudStackDropInRequest.vmActivity(arguments)
        switch request {
        case .help:
            CloudStackCommand.printLine(Self.usage)
        case .exit(let status, let message):
            CloudStackCommand.printReason("vm-activity", message)
            throw ExitCode(status)
        case .vmActivity(let target, let activity):
            try await check(target, activity, extensions)
        case .writeHeartbeat, .checkHeartbeat, .fence:
            preconditionFailure("the activity arguments never ask for a heartbeat")
        }
    }

    private func check(
        _ target: CloudStackDropInRequest.Pool,
        _ activity: CloudStackDropInRequest.Activity,
        _ extensions: CloudStackDropInRequest.Extensions
    ) async throws {
        let pool = CloudStackPool(
            mountPoint: target.mountPoint,
            ioTimeout: extensions.ioTimeout,
            allowUnmounted: extensions.allowUnmounted
        )
        defer { pool.stop() }
        let heartbeatPath = PoolLayout.cloudStackHeartbeat(target.host)
        let memoPath = PoolLayout.activityMemo(target.host)
        // The script stats nothing when -u is empty (it stops at the heartbeat or the empty list).
        let volumes = activity.volumeListGiven ? activity.volumes : []
        let now = WallClock.nowMs() / 1000

        let storage: ActivityStorage
        do {
            storage = try await pool.call("activity check reads") { files in
                .read(
                    heartbeat: ActivityProbe.heartbeat(files, heartbeatPath),
                    memo: ActivityProbe.memo(files, memoPath),
                    volumes: volumes.map { ActivityProbe.stat(files, $0) }
                )
            }
        } catch {
            storage = .unreadable(error.description)
        }
        let memoFile = CloudStackDropInActivity.scriptPath(mountPoint: target.mountPoint, host: target.host)
        let outcome = CloudStackDropInActivity.decide(
            CloudStackDropInActivity.Input(
                suspectTime: activity.suspectTime,
                checkerTime: activity.checkerTime ?? now,
                now: now,
                volumeListGiven: activity.volumeListGiven,
                storage: storage
            ),
            memoFile: memoFile
        )

        if let memo = outcome.memoToWrite {
            let bytes = memo.encoded()
            // Atomically (the script truncates in place): a concurrent reader never sees half a line.
            let temporary =
                "\(PoolLayout.haFolder)/.ac-\(target.host).tmp-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            do {
                try await pool.call("activity memo write") { files throws(PoolIOError) in
                    try files.replaceAtomically(memoPath, with: bytes, temporaryPath: temporary, durable: false)
                }
            } catch {
                // The script goes on to its verdict when its write fails; so do we, and say so.
                CloudStackCommand.printReason("vm-activity", "could not write \(memoFile): \(error)")
            }
        }

        guard let line = outcome.verdict.line else {
            if case .noVerdict(let why) = outcome.verdict {
                CloudStackCommand.printReason("vm-activity", "no verdict: \(why)")
            }
            throw ExitCode(CloudStackCommand.Status.noVerdict)
        }
        CloudStackCommand.printLine(line)
    }
}
