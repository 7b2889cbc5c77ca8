/// What one run of a drop-in command is asked to do, read from CloudStack's arguments
/// (`CloudStackDropInArguments`), with the exits the scripts take before touching storage.
public enum CloudStackDropInRequest: Hashable, Sendable {
    /// `kvmheartbeat.sh` without `-r` or `-c`: write this host's heartbeat file.
    case writeHeartbeat(Pool)
    /// `kvmheartbeat.sh -r -t SECS`: judge a host by the age of its heartbeat file.
    case checkHeartbeat(Pool, maxIntervalSeconds: Int64)
    /// `kvmheartbeat.sh -c`: the agent could not write the heartbeat; fence by the configured policy.
    case fence
    /// `kvmvmactivity.sh`: the VM activity check of a suspect host.
    case vmActivity(Pool, Activity)
    /// `--help`.
    case help
    /// Stop before doing anything, as the script does: `status` is its exit status; `message` (for stderr
    /// only: the script prints nothing on stdout in these cases) says why.
    case exit(status: Int32, message: String)

    /// The pool and host of a request: `-m` as given (the scripts print it as given) and `-h`.
    public struct Pool: Hashable, Sendable {
        public var mountPoint: String
        public var host: HostAddress

        public init(mountPoint: String, host: HostAddress) {
            self.mountPoint = mountPoint
            self.host = host
        }
    }

    public struct Activity: Hashable, Sendable {
        /// `-d`.
        public var suspectTime: Int64
        /// `-t`; nil when absent (then our clock is written into the memo).
        public var checkerTime: Int64?
        /// Whether `-u` was given non-empty (the script tests the text, not the names in it).
        public var volumeListGiven: Bool
        /// The names in `-u`: separated by commas or white space, empty names dropped.
        public var volumes: [String]

        public init(suspectTime: Int64, checkerTime: Int64?, volumeListGiven: Bool, volumes: [String]) {
            self.suspectTime = suspectTime
            self.checkerTime = checkerTime
            self.volumeListGiven = volumeListGiven
            self.volumes = volumes
        }
    }

    /// Our own options, beside CloudStack's.
    public struct Extensions: Hashable, Sendable {
        /// `--io-timeout`: the deadline of each storage call.
        public var ioTimeout: Duration = .seconds(3)
        /// `--config`: the daemon's config file, read by `-c` for `fenceAction`.
        public var config: String?
        /// `--allow-unmounted`: accept a `-m` that is not a mount point (tests, drills).
        public var allowUnmounted = false

        public init() {}
    }

    /// Usage errors exit 1, as the scripts' `help` does.
    public static let usageStatus: Int32 = 1

    static let longValueOptions: Set<String> = ["io-timeout", "config"]
    static let longFlags: Set<String> = ["allow-unmounted", "help"]

    /// `getopts 'i:p:m:h:t:rc'`.
    public static let heartbeatGrammar = CloudStackDropInArguments.Grammar(
        valueOptions: ["i", "p", "m", "h", "t"],
        flagOptions: ["r", "c"],
        longValueOptions: longValueOptions,
        longFlags: longFlags
    )

    /// `getopts 'i:p:m:u:t:h:d:'`.
    public static let activityGrammar = CloudStackDropInArguments.Grammar(
        valueOptions: ["i", "p", "m", "u", "t", "h", "d"],
        longValueOptions: longValueOptions,
        longFlags: longFlags
    )

    /// Reads `kvmheartbeat.sh`'s arguments. `-r` wins over `-c`, as in the script.
    public static func heartbeat(_ words: [String]) -> (CloudStackDropInRequest, Extensions) {
        let parsed: CloudStackDropInArguments
        switch CloudStackDropInArguments.parse(words, grammar: heartbeatGrammar) {
        case .success(let value): parsed = value
        case .failure(let problem): return (.exit(status: usageStatus, message: problem.description), Extensions())
        }
        let extensions: Extensions
        switch self.extensions(parsed) {
        case .success(let value): extensions = value
        case .failure(let usage): return (.exit(status: usageStatus, message: usage.message), Extensions())
        }
        if parsed.longFlags.contains("help") { return (.help, extensions) }
        // The script's first test: no NFS server, exit 1 and print nothing. We never mount, but keep the rule.
        if (parsed.values["i"] ?? "").isEmpty {
            return (.exit(status: 1, message: "-i (the NFS server) is not given: nothing done"), extensions)
        }
        if parsed.flags.contains("r") {
            let pool: Pool
            switch self.pool(parsed) {
            case .success(let value): pool = value
            case .failure(let usage): return (.exit(status: usageStatus, message: usage.message), extensions)
            }
            guard let text = parsed.values["t"], let seconds = CloudStackDropInArguments.seconds(text) else {
                return (
                    .exit(status: usageStatus, message: "-r needs -t SECS, the max interval in whole seconds"),
                    extensions
                )
            }
            return (.checkHeartbeat(pool, maxIntervalSeconds: seconds), extensions)
        }
        if parsed.flags.contains("c") { return (.fence, extensions) }
        switch self.pool(parsed) {
        case .success(let pool): return (.writeHeartbeat(pool), extensions)
        case .failure(let usage): return (.exit(status: usageStatus, message: usage.message), extensions)
        }
    }

    /// Reads `kvmvmactivity.sh`'s arguments.
    public static func vmActivity(_ words: [String]) -> (CloudStackDropInRequest, Extensions) {
        let parsed: CloudStackDropInArguments
        switch CloudStackDropInArguments.parse(words, grammar: activityGrammar) {
        case .success(let value): parsed = value
        case .failure(let problem): return (.exit(status: usageStatus, message: problem.description), Extensions())
        }
        let extensions: Extensions
        switch self.extensions(parsed) {
        case .success(let value): extensions = value
        case .failure(let usage): return (.exit(status: usageStatus, message: usage.message), Extensions())
        }
        if parsed.longFlags.contains("help") { return (.help, extensions) }
        // The script's first tests: no NFS server or no suspect time, exit 2 and print nothing.
        if (parsed.values["i"] ?? "").isEmpty {
            return (.exit(status: 2, message: "-i (the NFS server) is not given: nothing done"), extensions)
        }
        guard let suspectText = parsed.values["d"], !suspectText.isEmpty else {
            return (.exit(status: 2, message: "-d (the suspect time) is not given: nothing done"), extensions)
        }
        guard let suspectTime = CloudStackDropInArguments.seconds(suspectText) else {
            return (.exit(status: usageStatus, message: "-d: '\(suspectText)' is not a Unix time"), extensions)
        }
        var checkerTime: Int64?
        if let text = parsed.values["t"] {
            guard let value = CloudStackDropInArguments.seconds(text) else {
                return (.exit(status: usageStatus, message: "-t: '\(text)' is not a Unix time"), extensions)
            }
            checkerTime = value
        }
        let pool: Pool
        switch self.pool(parsed) {
        case .success(let value): pool = value
        case .failure(let usage): return (.exit(status: usageStatus, message: usage.message), extensions)
        }
        let listText = parsed.values["u"] ?? ""
        // The script turns commas into spaces and lets the shell split the words.
        let volumes = listText.split { $0 == "," || $0 == " " || $0 == "\t" || $0 == "\n" }.map(String.init)
        for volume in volumes where !ActivityCheck.isValidVolumeName(volume) {
            return (
                .exit(status: usageStatus, message: "-u: '\(volume)' is not a plain file name in the pool's root"),
                extensions
            )
        }
        guard volumes.count <= ActivityCheck.maxVolumes else {
            return (
                .exit(status: usageStatus, message: "-u: more than \(ActivityCheck.maxVolumes) volumes"), extensions
            )
        }
        let activity = Activity(
            suspectTime: suspectTime,
            checkerTime: checkerTime,
            volumeListGiven: !listText.isEmpty,
            volumes: volumes
        )
        return (.vmActivity(pool, activity), extensions)
    }

    /// A usage problem, said in a sentence.
    struct Usage: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    private static func pool(_ parsed: CloudStackDropInArguments) -> Result<Pool, Usage> {
        guard let mountPoint = parsed.values["m"], !mountPoint.isEmpty else {
            return .failure(Usage("-m (the pool's mount point) is not given"))
        }
        guard let hostText = parsed.values["h"], let host = HostAddress(hostText) else {
            return .failure(Usage("-h: '\(parsed.values["h"] ?? "")' is not a host's IPv4 address"))
        }
        return .success(Pool(mountPoint: mountPoint, host: host))
    }

    private static func extensions(_ parsed: CloudStackDropInArguments) -> Result<Extensions, Usage> {
        var extensions = Extensions()
        if let text = parsed.longValues["io-timeout"] {
            guard let duration = DurationText.parse(text), duration > .zero else {
                return .failure(Usage("--io-timeout: '\(text)' is not a positive duration (examples: 3s, 500ms)"))
            }
            extensions.ioTimeout = duration
        }
        extensions.config = parsed.longValues["config"]
        extensions.allowUnmounted = parsed.longFlags.contains("allow-unmounted")
        return .success(extensions)
    }
}
