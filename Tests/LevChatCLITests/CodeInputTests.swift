import Foundation
import Synchronization
import Testing

/// The code off the command line (Docs/CLI.md): from LEVCHAT_CODE or typed at a prompt that does
/// not echo, it is in neither `ps` nor on the screen, and the joiner still gets in.
@Suite(.timeLimit(.minutes(2)))
struct CodeInputTests {
    /// What `ps` shows of a process: its whole command line.
    static func commandLine(of pid: Int32) throws -> String {
        let raw = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
        return String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }

    static func forms(of code: String) -> [String] {
        let canonical = code.replacingOccurrences(of: "-", with: "")
        return [code, canonical, canonical.lowercased()]
    }

    @Test func aCodeFromTheEnvironmentIsNotOnTheCommandLine() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let pat = try PeerProcess("pat", ["join", "--name", "pat", "--peer", room.peerArgument, "--bind", "127.0.0.1", "--json"],
                                  environment: ["LEVCHAT_CODE": room.code.lowercased()])
        defer { pat.stop() }
        try await pat.waitFor("entered") { $0.type == "entered" }
        let shown = try Self.commandLine(of: pat.pid)
        #expect(shown.contains("join") && shown.contains("--peer"))
        for form in Self.forms(of: room.code) { #expect(!shown.contains(form), "\(shown)") }
        pat.send("hello from the environment")
        try await room.host.waitFor("pat's line") { $0.isMessage(from: "pat", text: "hello from the environment") }
    }

    /// A code as a chat program or a document hands it on: its dash made an en dash, in curly
    /// quotes with a full stop, or the whole command it was shown in, pasted as the argument or
    /// put in LEVCHAT_CODE. Each joins.
    @Test func aCodePastedWithWhatCameAroundItJoins() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let dashed = room.code.replacingOccurrences(of: "-", with: "\u{2013}")
        let forms: [(arguments: [String], environment: [String: String])] = [
            (["“\(dashed).”"], [:]),
            (["levchat-peer", "join", room.code.lowercased()], [:]),
            ([], ["LEVCHAT_CODE": "$ levchat-peer join \(dashed)"]),
        ]
        for (i, form) in forms.enumerated() {
            let name = "pat\(i)"
            let pat = try PeerProcess(name, ["join"] + form.arguments + ["--name", name, "--peer", room.peerArgument, "--bind", "127.0.0.1", "--json"],
                                      environment: form.environment)
            defer { pat.stop() }
            try await pat.waitFor("\(name) entering with \(form)") { $0.type == "entered" }
        }
    }

    @Test func aTypedCodeIsNotEchoedNorOnTheCommandLine() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let tmux = Tmux()
        defer { tmux.kill() }
        try tmux.start(PeerProcess.binary.path, ["join", "--name", "pat", "--peer", room.peerArgument, "--bind", "127.0.0.1"])
        try await tmux.waitForScreen("the prompt") { $0.contains("Room code:") }
        try tmux.type(room.code)
        try tmux.keys("Enter")
        try await room.host.waitFor("pat entering") { $0.isPresence("joined", "pat") }
        let screen = try tmux.screen()
        for form in Self.forms(of: room.code) { #expect(!screen.contains(form), "\(screen)") }
        let shown = try Self.commandLine(of: try tmux.panePID())
        for form in Self.forms(of: room.code) { #expect(!shown.contains(form), "\(shown)") }
    }

    /// A typo at the prompt asks again (three tries, as a password prompt); Ctrl-D or three
    /// wrong ones end the run with one sentence on a line of its own (it shared the prompt's) and
    /// the usage exit code, without a usage text for arguments the user never typed wrong.
    @Test func aTypoAtThePromptAsksAgain() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let command = "'\(PeerProcess.binary.path)' join --name pat --peer \(room.peerArgument) --bind 127.0.0.1; echo exit=$?; sleep 60"
        let typo = Tmux()
        defer { typo.kill() }
        try typo.startShell(command)
        try await typo.waitForScreen("the prompt") { $0.contains("Room code:") }
        try typo.type("abc")
        try typo.keys("Enter")
        try await typo.waitForScreen("asked again") { screen in
            screen.contains("that room code has 3 characters") && screen.contains("try again")
                && screen.components(separatedBy: "\n").filter { $0.hasPrefix("Room code:") }.count == 2
        }
        try typo.type(room.code)
        try typo.keys("Enter")
        try await room.host.waitFor("pat entering after a typo") { $0.isPresence("joined", "pat") }

        for (keys, says) in [(["C-d"], "levchat-peer: no room code was typed"),
                             (["7kq", "7kq m4u", "x"], "levchat-peer: that room code has 1 character")] {
            let tmux = Tmux()
            defer { tmux.kill() }
            try tmux.startShell(command)
            for (index, key) in keys.enumerated() {
                // Each key after its own prompt: typed earlier, between two reads, the terminal
                // would echo it onto the rows this test reads.
                try await tmux.waitForScreen("prompt \(index + 1), for \(key)") { screen in
                    screen.components(separatedBy: "\n").filter { $0.hasPrefix("Room code:") }.count > index
                }
                if key == "C-d" { try tmux.keys("C-d") } else { try tmux.type(key); try tmux.keys("Enter") }
            }
            try await tmux.waitForScreen("the end") { $0.contains("exit=64") }
            let rows = try tmux.rows()
            #expect(rows.contains { $0.hasPrefix(says) }, "\(rows)")
            #expect(!rows.contains { $0.contains("Usage:") }, "\(rows)")
        }
    }

    @Test func noCodeAndNoTerminalIsAUsageError() async throws {
        for arguments in [["join", "--peer", "127.0.0.1:1"], ["join", "--json", "--peer", "127.0.0.1:1"]] {
            let peer = try PeerProcess("nocode", arguments)
            defer { peer.stop() }
            #expect(try await peer.waitForExit() == 64)
            #expect(peer.errorText.contains("no room code") && peer.errorText.contains("LEVCHAT_CODE"), "\(peer.errorText)")
        }
        let bad = try PeerProcess("badenv", ["join", "--peer", "127.0.0.1:1"], environment: ["LEVCHAT_CODE": "7KQ-M4U"])
        defer { bad.stop() }
        #expect(try await bad.waitForExit() == 64)
        #expect(bad.errorText.contains("LEVCHAT_CODE: 'U' cannot be part of a room code"), "\(bad.errorText)")
    }
}

/// A private tmux server (its own socket) running one command in a real terminal. The server runs
/// in the foreground (`-D`) as this test's own child, stopped by its pid: a daemonised server would
/// outlive the test and hold the descriptors of the client that forked it.
final class Tmux: Sendable {
    let socket = "levchat-test-\(UInt32.random(in: 0...UInt32.max))"
    private let server = Mutex<(pid: pid_t, exit: ChildExit)?>(nil)

    @discardableResult
    func run(_ arguments: [String], capture: Bool = true) throws -> String {
        try CommandOutput.run("/usr/bin/tmux", ["-L", socket] + arguments, capture: capture)
    }

    /// Starts the server with the command; the server keeps running after this returns, so it
    /// gets no pipe of ours to hold open.
    func start(_ binary: String, _ arguments: [String], columns: Int = 80, rows: Int = 24, environment: [String: String] = [:]) throws {
        let command = ([binary] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let env = environment.sorted { $0.key < $1.key }.map { "'\($0.key)=\($0.value)'" }.joined(separator: " ")
        try startShell("exec " + (env.isEmpty ? "" : "env \(env) ") + command, columns: columns, rows: rows)
    }

    /// Runs a shell command line in the terminal.
    func startShell(_ script: String, columns: Int = 80, rows: Int = 24) throws {
        let pid = try Spawn.start("/usr/bin/tmux", ["-L", socket, "-D"], environment: ProcessInfo.processInfo.environment)
        server.withLock { $0 = (pid, ChildExit(pid: pid)) }
        // The server makes its socket as it starts. A client before that would start a server of
        // its own, a daemon that this test could not stop by pid.
        let socketPath = "/tmp/tmux-\(getuid())/\(socket)"
        for _ in 0..<1_000 where !FileManager.default.fileExists(atPath: socketPath) { usleep(10_000) }
        guard FileManager.default.fileExists(atPath: socketPath) else { throw PeerTestError.timedOut("tmux made no socket within 10 s") }
        try run(["new-session", "-d", "-x", "\(columns)", "-y", "\(rows)", "-s", "t", script], capture: false)
    }

    func type(_ text: String) throws { try run(["send-keys", "-t", "t", "-l", text]) }
    func keys(_ names: String...) throws { try run(["send-keys", "-t", "t"] + names) }
    func screen() throws -> String { try run(["capture-pane", "-p", "-t", "t"]) }
    /// The screen with its colours and attributes as escape sequences.
    func screenWithEscapes() throws -> String { try run(["capture-pane", "-p", "-e", "-t", "t"]) }
    /// Everything the terminal keeps: its history (what scrolled off the top), then the screen.
    func everything() throws -> String { try run(["capture-pane", "-p", "-S", "-", "-t", "t"]) }
    /// The screen's rows, trailing blank rows dropped.
    func rows() throws -> [String] {
        var rows = try screen().components(separatedBy: "\n")
        while let last = rows.last, last.trimmingCharacters(in: .whitespaces).isEmpty { rows.removeLast() }
        return rows
    }

    /// Where the cursor is: column and row, from 0.
    func cursor() throws -> (x: Int, y: Int) {
        let parts = try run(["display-message", "-p", "-t", "t", "#{cursor_x} #{cursor_y}"])
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").compactMap { Int($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : (-1, -1)
    }

    /// Resizes the terminal (the program gets SIGWINCH).
    func resize(columns: Int, rows: Int = 24) throws {
        try run(["resize-window", "-t", "t", "-x", "\(columns)", "-y", "\(rows)"])
    }

    /// Whether the program rang the bell since the window was last looked at.
    func rangTheBell() throws -> Bool {
        try run(["display-message", "-p", "-t", "t", "#{window_bell_flag}"]).trimmingCharacters(in: .whitespacesAndNewlines) == "1"
    }

    /// The terminal device of the pane, for `stty -F`.
    func paneTTY() throws -> String {
        try run(["list-panes", "-t", "t", "-F", "#{pane_tty}"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func panePID() throws -> Int32 {
        Int32(try run(["list-panes", "-t", "t", "-F", "#{pane_pid}"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    func waitForScreen(_ what: String, timeout: Duration = .seconds(20), _ match: (String) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if match(try screen()) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("no \(what) on the screen within \(timeout): \(try screen())")
        throw CancellationError()
    }

    func kill() {
        guard let (pid, exit) = server.withLock({ $0 }) else { return }  // never started
        _ = try? run(["kill-server"])
        if exit.waitBlocking(timeout: 0.5) == nil {
            Foundation.kill(pid, SIGKILL)
            exit.waitBlocking()
        }
    }
}

/// What a short command prints, through a file rather than a pipe: a child spawned at the same
/// moment by another test can inherit a pipe's write end and hold it open for its whole life, so
/// reading a pipe to its end could wait for that child rather than for this command.
enum CommandOutput {
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], capture: Bool = true) throws -> String {
        let environment = ProcessInfo.processInfo.environment
        guard capture else {
            waitOrKill(try Spawn.start(executable, arguments, environment: environment))
            return ""
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-out-\(UInt64.random(in: 0...UInt64.max))").path
        let file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw Spawn.Failure.failed("cannot create \(path)", errno) }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pid: pid_t
        do {
            defer { close(file) }
            pid = try Spawn.start(executable, arguments, environment: environment, stdout: file)
        }
        waitOrKill(pid)
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// A short command gets 30 s; one that hangs is killed rather than holding the test's thread.
    private static func waitOrKill(_ pid: pid_t) {
        let exit = ChildExit(pid: pid)
        if exit.waitBlocking(timeout: 30) == nil {
            kill(pid, SIGKILL)
            exit.waitBlocking()
        }
    }
}
