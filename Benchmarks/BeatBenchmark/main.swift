// CPU per heartbeat: kvmha's writer against a shell baseline doing what CloudStack's kvmheartbeat.sh does
// per beat (fork bash, `date +%s`, write the file), on the same directory.
//
//   swift run -c release kvmha-bench [--dir DIR] [--beats N] [--shell-beats N] [--baseline minimal|script|both]
//
// CPU is user + system time from getrusage: RUSAGE_SELF for our writer (all threads of this process),
// RUSAGE_CHILDREN for the shell baseline (bash and date, reaped).
import Foundation
import HeartbeatCore
import Logging
import Sidecar

#if canImport(Glibc)
import Glibc
#endif

func cpuSeconds(_ who: Int32) -> Double {
    var usage = rusage()
    getrusage(who == 0 ? RUSAGE_SELF.rawValue : RUSAGE_CHILDREN.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func argument(_ name: String, default value: String) -> String {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: name), index + 1 < arguments.count { return arguments[index + 1] }
    return value
}

let directory = argument("--dir", default: NSTemporaryDirectory() + "kvmha-bench-\(getpid())")
let beats = Int(argument("--beats", default: "20000"))!
let shellBeats = Int(argument("--shell-beats", default: "500"))!
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)

var logger = Logger(label: "bench")
logger.logLevel = .critical
var timing = TimingSettings()
timing.interval = .seconds(5)
timing.ioTimeout = .seconds(4)
let pool = Pool(id: "bench", location: directory, ioTimeout: timing.ioTimeout, logger: logger) {
    DirectoryPoolFiles(root: directory)
}
let identity = HostIdentity.current(address: HostAddress("10.0.0.1")!, hostUUID: "bench-host")

// The writer as it runs in the daemon: its own timer, one beat per interval. A short interval packs many
// beats into the run; the work per beat is the same as at 5 s.
let beatInterval = DurationText.parse(argument("--interval", default: "2ms"))!
timing.interval = beatInterval
// The deadline in the daemon's proportion to the interval (defaults: 4 s of 5 s), so that whatever enforces it
// costs here what it costs there.
timing.ioTimeout = DurationText.parse(argument("--io-timeout", default: "")) ?? beatInterval * 0.8
let counter = BeatCounter(target: beats + 100)
let steadyWriter = BeatWriter(identity: identity, pools: [pool], timing: timing, logger: logger, onRound: { round in
    counter.record(round)
})
let running = Task { try await steadyWriter.run() }
await counter.waitUntil(100)  // warm-up: folders created, code faulted in
let ourStart = cpuSeconds(0)
let ourWallStart = ContinuousClock.now
await counter.waitUntil(beats + 100)
let ourCPU = (cpuSeconds(0) - ourStart) / Double(beats)
let ourWall = ourWallStart.duration(to: .now).seconds / Double(beats)
running.cancel()
_ = await running.result
let failures = counter.failures
pool.stop()

// Shell baselines, each run `shellBeats` times, CPU of the children (RUSAGE_CHILDREN) per beat:
// - *minimal*: the least a shell heartbeat does — bash, `date +%s`, the file written (bash runs `date` in
//   place of itself, so this is one exec);
// - *script*: the commands that CloudStack's kvmheartbeat.sh runs on every write-mode call, in a shell line of
//   our own: the mount check (`cat /proc/mounts | grep nfs | grep MOUNTPOINT` in a command substitution), `stat`
//   of the file, `date +%s` in a command substitution, the write. Its remount branch (taken when the mount
//   check finds no NFS mount, as on this benchmark's local folder) is left out: the result of the check is
//   ignored, as on a host whose pool is mounted.
let hbFile = directory + "/KVMHA/hb-10.0.0.2"
let baselines: [(name: String, script: String)] = [
    ("minimal", "date +%s > \"$1\""),
    ("script", "m=$(cat /proc/mounts | grep nfs | grep -- \"$2\"); stat -- \"$1\" >/dev/null 2>&1; t=$(date +%s); echo \"$t\" > \"$1\""),
]
let chosen = argument("--baseline", default: "both")
var shellResults: [(name: String, cpu: Double, wall: Double)] = []
for baseline in baselines where chosen == "both" || chosen == baseline.name {
    let shellStart = cpuSeconds(1)
    let shellWallStart = ContinuousClock.now
    for _ in 0..<shellBeats {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", baseline.script, "bash", hbFile, directory]
        try process.run()
        process.waitUntilExit()
    }
    shellResults.append((
        baseline.name, (cpuSeconds(1) - shellStart) / Double(shellBeats),
        shellWallStart.duration(to: .now).seconds / Double(shellBeats)))
}

func micro(_ seconds: Double) -> String { String(format: "%.1f µs", seconds * 1e6) }
print("directory: \(directory)")
print("kvmha writer:   \(beats) beats every \(DurationText.format(beatInterval)), CPU/beat \(micro(ourCPU)) (process total: timer, I/O thread, syscalls), failed \(failures)")
for result in shellResults {
    print("shell baseline (\(result.name)): \(shellBeats) beats, CPU/beat \(micro(result.cpu)), wall/beat \(micro(result.wall))")
    print(String(format: "ratio (\(result.name) shell CPU / kvmha CPU): %.0f×", result.cpu / ourCPU))
}
try? FileManager.default.removeItem(atPath: directory)

if CommandLine.arguments.contains("--breakdown") {
    let files = DirectoryPoolFiles(root: directory)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try files.makeFolder(PoolLayout.recordFolder)
    let record = HeartbeatRecord(host: HostAddress("10.0.0.1")!, hostUUID: "x", bootID: identity.bootID, incarnation: identity.incarnation, sequence: 1, wallTimeMs: 1, intervalMs: 5000, vms: [])
    var start = cpuSeconds(0)
    var total = 0
    for _ in 0..<beats { total += RecordCodec.encode(record).count }
    print("encode: \(micro((cpuSeconds(0) - start) / Double(beats)))")
    let bytes = RecordCodec.encode(record)
    start = cpuSeconds(0)
    for index in 0..<beats {
        try files.replaceAtomically(PoolLayout.record(record.host), with: bytes, temporaryPath: "KVMHA/kvmha/.tmp\(index)", durable: true)
    }
    print("replace durable: \(micro((cpuSeconds(0) - start) / Double(beats)))")
    start = cpuSeconds(0)
    for index in 0..<beats {
        try files.replaceAtomically(PoolLayout.record(record.host), with: bytes, temporaryPath: "KVMHA/kvmha/.tmp\(index)", durable: false)
    }
    print("replace: \(micro((cpuSeconds(0) - start) / Double(beats)))")
    let thread = PoolIOThread(name: "x") { DirectoryPoolFiles(root: directory) }
    start = cpuSeconds(0)
    for _ in 0..<beats { _ = try await thread.run("noop", timeout: .seconds(4)) { _ in 1 } }
    print("thread hop: \(micro((cpuSeconds(0) - start) / Double(beats)))")
    thread.stop()
}

/// Counts the writer's rounds and lets the benchmark wait for a number of them.
final class BeatCounter: @unchecked Sendable {
    // @unchecked: state guarded by `condition`.
    private let condition = NSCondition()
    private var count = 0
    private var waitingFor = Int.max
    private(set) var failures = 0
    let target: Int
    init(target: Int) { self.target = target }
    func record(_ round: BeatWriter.Round) {
        condition.lock()
        count += 1
        failures += round.failed.count
        if count >= waitingFor { condition.broadcast() }  // wake the waiter only when it is done
        condition.unlock()
    }
    func waitUntil(_ beats: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                self.condition.lock()
                self.waitingFor = beats
                while self.count < beats { self.condition.wait() }
                self.condition.unlock()
                continuation.resume()
            }
        }
    }
}
