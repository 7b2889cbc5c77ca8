// Beats and 1,000-host scans through libnfs against nfs-ganesha, and the same through the mounted-directory
// store on the exported folder (what a kernel mount would serve; here plain local disk, so it is the floor).
//
//   swift build -c release --product kvmha-nfs-bench
//   .build/release/kvmha-nfs-bench [--version 3|4] [--beats N] [--hosts N] [--scans N] [--vms N]
//
// Starts its own nfs-ganesha on loopback through Tests/Harness/ganesha/ganesha-harness.sh (root needed; the
// harness stops it again, also if this process dies). Everything goes through the daemon's own code: beats are
// `BeatWriter.beatOnce()` (encode, our record and CloudStack's hb- file, each replaced atomically), scans are
// `PeerMonitor.scanOnce()` (list the record folder, read and decode every record, 64 reads per storage call).
//
// CPU is user + system time of this process from getrusage(RUSAGE_SELF): every thread (timer, pool thread,
// libnfs); the server's CPU (ganesha's utime + stime from /proc) is shown beside it, not included.
import Foundation
import HeartbeatCore
import Logging
import NFS
import Sidecar

#if canImport(Glibc)
import Glibc
#endif

func argument(_ name: String, default value: String) -> String {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: name), index + 1 < arguments.count { return arguments[index + 1] }
    return value
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// utime + stime of a process, from /proc/PID/stat.
func processCPUSeconds(_ pid: String) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return 0 }
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

let version = Int(argument("--version", default: "3")) == 4 ? NFSVersion.v4 : .v3
let beats = Int(argument("--beats", default: "2000"))!
let hosts = Int(argument("--hosts", default: "1000"))!
let scans = Int(argument("--scans", default: "20"))!
let vmsPerHost = Int(argument("--vms", default: "10"))!

let harness = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Tests/Harness/ganesha/ganesha-harness.sh").path

/// Runs the harness script; output goes to files, since ganesha and rpcbind would keep a pipe open.
func runHarness(_ arguments: [String]) throws -> [String: String] {
    let base = NSTemporaryDirectory() + "kvmha-nfs-bench-harness-\(getpid())"
    _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
    _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: base + ".out")
        try? FileManager.default.removeItem(atPath: base + ".err")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [harness] + arguments
    process.standardOutput = FileHandle(forWritingAtPath: base + ".out")
    process.standardError = FileHandle(forWritingAtPath: base + ".err")
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    let output = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
    guard process.terminationStatus == 0 else {
        let errors = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        throw BenchmarkFailure(description: "ganesha-harness.sh \(arguments.joined(separator: " ")): \(errors)")
    }
    var values: [String: String] = [:]
    for line in output.split(separator: "\n") {
        guard let eq = line.firstIndex(of: "=") else { continue }
        values[String(line[..<eq])] = String(line[line.index(after: eq)...])
    }
    return values
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
}

func micro(_ seconds: Double) -> String { String(format: "%.1f µs", seconds * 1e6) }
func milli(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1e3) }

let logger: Logger = {
    var logger = Logger(label: "nfs-bench")
    logger.logLevel = .critical
    return logger
}()
let timing: TimingSettings = {
    var timing = TimingSettings()
    // Generous: no beat or scan call here should come near it; a failure is counted and printed.
    timing.ioTimeout = .seconds(10)
    timing.interval = .seconds(15)
    return timing
}()

let serverDirectory = NSTemporaryDirectory() + "kvmha-nfs-bench-\(getpid())"
let started = try runHarness(["start", serverDirectory, "--v3", "--watch", String(getpid())])
func stopServer() {
    _ = try? runHarness(["stop", serverDirectory])
    try? FileManager.default.removeItem(atPath: serverDirectory)
}
guard let export = started["GANESHA_EXPORT_DIR"], let ganeshaPID = started["GANESHA_PID"],
    let urlText = started[version == .v3 ? "GANESHA_URL_V3" : "GANESHA_URL_V4"],
    let url = try? NFSURL(parsing: urlText)
else {
    stopServer()
    throw BenchmarkFailure(description: "the harness printed no export, pid or URL: \(started)")
}

@MainActor func makePools() -> (nfs: Pool, directory: Pool) {
    let nfs = Pool(id: "bench", location: url.description, ioTimeout: timing.ioTimeout, logger: logger) {
        [url, ioTimeout = timing.ioTimeout] in NFSPoolFiles(url: url, ioTimeout: ioTimeout)
    }
    let directory = Pool(id: "bench", location: export, ioTimeout: timing.ioTimeout, logger: logger) {
        [export] in DirectoryPoolFiles(root: export)
    }
    return (nfs, directory)
}

// MARK: Beats

@MainActor func measureBeats(_ pool: Pool, _ label: String) async {
    let writer = BeatWriter(
        identity: HostIdentity.current(address: HostAddress("10.0.0.1")!, hostUUID: "bench-host"),
        pools: [pool], timing: timing, logger: logger)
    for _ in 0..<50 { await writer.beatOnce() }  // warm-up: mount, folders, code faulted in
    var failures = 0
    let cpuStart = cpuSeconds()
    let serverStart = processCPUSeconds(ganeshaPID)
    let wallStart = ContinuousClock.now
    for _ in 0..<beats {
        failures += await writer.beatOnce().failed.count
    }
    let wall = wallStart.duration(to: .now).seconds
    let cpu = cpuSeconds() - cpuStart
    let server = processCPUSeconds(ganeshaPID) - serverStart
    print(
        "\(label) beats: \(beats) back to back, \(String(format: "%.0f", Double(beats) / wall)) beats/s, wall/beat \(micro(wall / Double(beats))), CPU/beat \(micro(cpu / Double(beats)))"
            + (label.hasPrefix("libnfs") ? ", server CPU/beat \(micro(server / Double(beats)))" : "")
            + ", failed \(failures)")
}

// MARK: Scans

@MainActor func populate() throws {
    let files = DirectoryPoolFiles(root: export)
    try files.makeFolder(PoolLayout.recordFolder)
    let vms = (0..<vmsPerHost).map {
        VMEntry(
            uuid: UUID().uuidString.lowercased(), name: "i-2-\(1000 + $0)-VM", state: .running, reason: "booted",
            sinceMs: 1_700_000_000_000)
    }
    for index in 0..<hosts {
        let host = HostAddress(10, 1, UInt8(index / 250), UInt8(index % 250 + 1))
        let record = HeartbeatRecord(
            host: host, hostUUID: UUID().uuidString.lowercased(), bootID: UUID().uuidString.lowercased(),
            incarnation: UUID().uuidString.lowercased(), sequence: UInt64(index + 1), wallTimeMs: WallClock.nowMs(),
            intervalMs: 5000, vms: vms)
        try files.replaceAtomically(
            PoolLayout.record(host), with: RecordCodec.encode(record), temporaryPath: "\(PoolLayout.recordFolder)/.populate",
            durable: false)
    }
}

@MainActor func measureScans(_ pool: Pool, _ label: String) async throws {
    let monitor = PeerMonitor(
        identity: HostIdentity.current(address: HostAddress("10.0.0.1")!, hostUUID: "bench-host"),
        pools: [pool], timing: timing, skewAllowance: nil, logger: logger)
    await monitor.scanOnce()  // warm-up: mount, first observation of every peer
    let seen = monitor.reports().filter { $0.perPool["bench"]?.evidence.lastRecord != nil }.count
    guard seen == hosts else {
        throw BenchmarkFailure(description: "\(label): the warm-up scan read \(seen) of \(hosts) records")
    }
    var cpuTimes: [Double] = []
    var wallTimes: [Double] = []
    var serverTotal = 0.0
    for _ in 0..<scans {
        let cpuStart = cpuSeconds()
        let serverStart = processCPUSeconds(ganeshaPID)
        let wallStart = ContinuousClock.now
        await monitor.scanOnce()
        wallTimes.append(wallStart.duration(to: .now).seconds)
        cpuTimes.append(cpuSeconds() - cpuStart)
        serverTotal += processCPUSeconds(ganeshaPID) - serverStart
    }
    let healthy = pool.health.reachable
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    let meanCPU = cpuTimes.reduce(0, +) / Double(scans)
    print(
        "\(label) scan of \(hosts) hosts: \(scans) scans, CPU/scan mean \(milli(meanCPU)) median \(milli(median(cpuTimes))) max \(milli(cpuTimes.max()!)), wall/scan median \(milli(median(wallTimes))) max \(milli(wallTimes.max()!))"
            + (label.hasPrefix("libnfs") ? ", server CPU/scan \(milli(serverTotal / Double(scans)))" : "")
            + (healthy ? "" : ", POOL UNREACHABLE: \(pool.health.lastError ?? "?")"))
}

/// Where a scan's CPU goes: the storage calls alone (list + every read, on this thread, no pool thread) through
/// each store, and decoding alone.
@MainActor func scanBreakdown() throws {
    func cpu(_ body: () throws -> Void) rethrows -> Double {
        let start = cpuSeconds()
        try body()
        return cpuSeconds() - start
    }
    let stores: [(String, any PoolFiles)] = [
        ("libnfs NFSv\(version.rawValue)", NFSPoolFiles(url: url, ioTimeout: timing.ioTimeout)),
        ("directory", DirectoryPoolFiles(root: export)),
    ]
    var bytes: [(HostAddress, [UInt8])] = []
    for (label, files) in stores {
        _ = try files.list(PoolLayout.recordFolder)  // mount
        let rounds = 5
        let used = try cpu {
            for _ in 0..<rounds {
                bytes = []
                for entry in try files.list(PoolLayout.recordFolder) {
                    guard let host = PoolLayout.host(ofRecordFileName: entry.name) else { continue }
                    if case .bytes(let read) = try files.read(
                        "\(PoolLayout.recordFolder)/\(entry.name)", maxBytes: RecordCodec.maxBytes)
                    {
                        bytes.append((host, read))
                    }
                }
            }
        }
        print("  \(label) storage calls only (list + \(bytes.count) reads): CPU/scan \(milli(used / Double(rounds)))")
        // As the peer monitor reads: 64 records per `readMany` (one pipelined batch through libnfs over NFSv3).
        var batchedReads = 0
        let batched = try cpu {
            for _ in 0..<rounds {
                batchedReads = 0
                let names = try files.list(PoolLayout.recordFolder).map(\.name).filter {
                    PoolLayout.host(ofRecordFileName: $0) != nil
                }
                var start = 0
                while start < names.count {
                    let chunk = Array(names[start..<min(start + 64, names.count)])
                    start += chunk.count
                    for case .success(.bytes) in try files.readMany(
                        folder: PoolLayout.recordFolder, names: chunk, maxBytes: RecordCodec.maxBytes)
                    {
                        batchedReads += 1
                    }
                }
            }
        }
        print(
            "  \(label) storage calls only, 64 reads per readMany (list + \(batchedReads) reads): CPU/scan \(milli(batched / Double(rounds)))"
        )
    }
    let rounds = 5
    var decoded = 0
    let used = cpu {
        for _ in 0..<rounds {
            for (host, read) in bytes where (try? RecordCodec.decode(read, expectedHost: host).get()) != nil {
                decoded += 1
            }
        }
    }
    print("  decoding only (\(decoded / rounds) records): CPU/scan \(milli(used / Double(rounds)))")
}

@MainActor func runAll() async throws {
    print("server: nfs-ganesha, \(url) (export \(export)); libnfs timeout \(DurationText.format(NFSPoolFiles.callTimeout(below: timing.ioTimeout)))")
    print("")
    let label = "libnfs NFSv\(version.rawValue)"
    var pools = makePools()
    await measureBeats(pools.nfs, label)
    await measureBeats(pools.directory, "directory")
    pools.nfs.stop()
    pools.directory.stop()
    print("")

    try populate()
    let sample = export + "/" + PoolLayout.record(HostAddress(10, 1, 0, 1))
    let recordBytes = (try? FileManager.default.attributesOfItem(atPath: sample))?[.size] ?? 0
    print("pool: \(hosts) records of \(recordBytes) bytes (\(vmsPerHost) VMs each)")
    pools = makePools()
    try await measureScans(pools.nfs, label)
    try await measureScans(pools.directory, "directory")
    pools.nfs.stop()
    pools.directory.stop()
    print("where a scan's CPU goes:")
    try scanBreakdown()
}

do {
    try await runAll()
} catch {
    stopServer()
    throw error
}
stopServer()
