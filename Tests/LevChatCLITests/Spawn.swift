import Foundation

/// Starts the tests' child processes with `posix_spawn`, never with Foundation's `Process`
/// (Docs/TESTING.md, "Child processes in tests"):
///
/// - On Linux `Process.run` lists `/proc/self/fd` to close inherited descriptors, and copies each
///   entry's whole 256-byte name whatever its length (swift-corelibs-foundation#5472): with a
///   thousand or more descriptors open, as in the flood test, an entry at the end of glibc's
///   buffer is read past an unmapped page and the test process dies of SIGSEGV. It did, in a run
///   of the whole suite.
/// - `Process` learns of an exit through a socket the child inherits (see `ChildExit`).
///
/// Here the child gets its three standard descriptors and nothing else
/// (`posix_spawn_file_actions_addclosefrom_np`), a process group of its own, no signal blocked
/// and every signal at its default: a test runner's threads block signals (a child would inherit
/// that mask and never see SIGTERM) and the soak ignores SIGPIPE.
enum Spawn {
    enum Failure: Error, CustomStringConvertible {
        case failed(String, Int32)
        var description: String {
            switch self { case .failed(let what, let code): "\(what): \(String(cString: strerror(code)))" }
        }
    }

    /// Starts `executable` with `arguments`; `stdin`, `stdout` and `stderr` are descriptors of
    /// this process to give the child (nil: /dev/null). Returns the child's pid; watch it with
    /// `ChildExit(pid:)`, which also reaps it.
    static func start(_ executable: String, _ arguments: [String], environment: [String: String],
                      stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            let code = source.map { posix_spawn_file_actions_adddup2(&actions, $0, target) }
                ?? posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            guard code == 0 else { throw Failure.failed("posix_spawn_file_actions", code) }
        }
        guard Spawn.addCloseFrom(&actions, 3) == 0 else { throw Failure.failed("posix_spawn_file_actions_addclosefrom_np", errno) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid = pid_t()
        let code = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard code == 0 else { throw Failure.failed("cannot start \(executable)", code) }
        return pid
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later) is a GNU extension
    /// that Swift's Glibc module does not declare; it is looked up by name.
    private static let addCloseFrom: @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32 = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            fatalError("glibc 2.34 or later is needed (posix_spawn_file_actions_addclosefrom_np)")
        }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// A pipe whose two ends close on exec. (Every child of `start` gets only its three standard
    /// descriptors anyway; this keeps the ends from any other spawner's children too.)
    static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw Failure.failed("pipe", errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// This process's environment with `changes` applied.
    static func environment(_ changes: [String: String]) -> [String: String] {
        ProcessInfo.processInfo.environment.merging(changes) { $1 }
    }
}
