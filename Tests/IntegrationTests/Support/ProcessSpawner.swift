import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `posix_spawn` with what `ChildProcess` needs: a new process group, stdin from /dev/null,
/// stdout/stderr into pipes, no other inherited descriptors, default signal dispositions and mask.
enum ProcessSpawner {
    struct Spawned {
        let pid: pid_t
        /// Read ends (close-on-exec) of the child's stdout and stderr.
        let stdout: Int32
        let stderr: Int32
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    /// glibc ≥ 2.34 has these, but declares them only for _GNU_SOURCE, which Swift's Glibc module
    /// does not define; look them up at run time instead.
    private static func glibcFunction<Function>(_ name: String, as type: Function.Type) -> Function? {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, name) else { return nil }
        return unsafeBitCast(symbol, to: type)
    }

    static func spawn(
        path: String,
        arguments: [String],
        environment: [String: String],
        workingDirectory: String?
    ) throws -> Spawned {
        let stdoutPipe = try makePipe()
        let stderrPipe = try makePipe()
        var parentEnds = [stdoutPipe.read, stderrPipe.read]
        defer {
            close(stdoutPipe.write)
            close(stderrPipe.write)
            for fd in parentEnds { close(fd) }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // dup2 clears close-on-exec on the new descriptor; the originals close at exec.
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe.write, 2)
        if let addCloseFrom = glibcFunction("posix_spawn_file_actions_addclosefrom_np", as: AddCloseFrom.self) {
            _ = addCloseFrom(&actions, 3)
        }
        if let workingDirectory {
            guard let addChdir = glibcFunction("posix_spawn_file_actions_addchdir_np", as: AddChdir.self) else {
                throw HarnessError("cannot start \(path) in \(workingDirectory): this glibc has no posix_spawn chdir")
            }
            _ = addChdir(&actions, workingDirectory)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group: signals to the group reach the program and all it started, and never
        // the test runner. Default dispositions: the test runner may ignore SIGPIPE, and ignored
        // signals would be inherited through exec.
        posix_spawnattr_setflags(
            &attributes,
            Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        )
        posix_spawnattr_setpgroup(&attributes, 0)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }

        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw HarnessError("cannot start \(path): \(String(cString: strerror(result)))")
        }
        parentEnds = []
        return Spawned(pid: pid, stdout: stdoutPipe.read, stderr: stderrPipe.read)
    }

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        // Swift's Glibc module lacks pipe2; set close-on-exec right away so no other child
        // spawned meanwhile keeps these pipes open.
        guard pipe(&fds) == 0 else {
            throw HarnessError("pipe failed: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        return (fds[0], fds[1])
    }
}
