import Foundation
import Testing

/// Bad command-line input gets one clear sentence and a non-zero exit, never a stack trace.
@Suite(.timeLimit(.minutes(1)))
struct CommandLineTests {
    struct BadInvocation: CustomTestStringConvertible, Sendable {
        let arguments: [String]
        let environment: [String: String]
        let says: String
        init(_ arguments: [String], env: [String: String] = [:], says: String) {
            self.arguments = arguments
            environment = env
            self.says = says
        }
        var testDescription: String { arguments.joined(separator: " ") + (environment.isEmpty ? "" : " \(environment)") }
    }

    @Test(arguments: [
        BadInvocation(["join", "7KQ-M4U", "--peer", "127.0.0.1:1"], says: "'U' cannot be part of a room code"),
        BadInvocation(["join", "7KQ", "--peer", "127.0.0.1:1"], says: "that room code has 3 characters"),
        BadInvocation(["join", "7KQ-M4X", "--peer", "nowhere"], says: "--peer takes HOST:PORT"),
        BadInvocation(["join", "7KQ-M4X", "--peer", "127.0.0.1:99999"], says: "--peer takes HOST:PORT"),
        BadInvocation(["join", "7KQ-M4X", "--peer", "127.0.0.1:1", "--name", String(repeating: "n", count: 40)], says: "at most 32 characters"),
        BadInvocation(["create", "--no-mdns", "--name", "  "], says: "at least one visible character"),
        BadInvocation(["create", "--no-mdns", "--name", "ali\u{200B}ce"], says: "control, format or invisible characters"),
        BadInvocation(["create", "--no-mdns", "--name", "bob\tsmith"], says: "control, format or invisible characters"),
        BadInvocation(["create", "--no-mdns", "--name", String(repeating: "€", count: 22)], says: "at most 64 bytes"),
        BadInvocation(["create", "--no-mdns", "--port", "70000"], says: "--port must be from 0 to 65535"),
        BadInvocation(["join", "7KQ-M4X", "--peer", "127.0.0.1:1", "--downloads", "/etc/passwd"], says: "--downloads takes a folder, and /etc/passwd is not one"),
        BadInvocation(["create", "--no-mdns", "--downloads", ""], says: "--downloads takes a folder, not an empty name"),
        BadInvocation(["create", "--no-mdns", "--code-length", "7"], says: "--code-length must be 6, 9 or 12"),
        BadInvocation(["create", "--no-mdns", "--port", "seven"], says: "--port"),
        // A negative number is the option's value, refused for its range (it was taken for an
        // option, and the sentence said the value was missing).
        BadInvocation(["create", "--no-mdns", "--port", "-1"], says: "--port must be from 0 to 65535, not -1"),
        BadInvocation(["create", "--no-mdns", "--bind", "my-laptop"], says: "--bind takes an IP address of this machine"),
        BadInvocation(["join", "7KQ-M4X", "--peer", "127.0.0.1:1", "--bind", "10.0.0.1%"], says: "--bind takes an IP address of this machine"),
        BadInvocation(["join", "7KQ-M4X", "--peer", "127.0.0.1:1", "--timeout", "-3"], says: "--timeout takes seconds, more than 0 and at most 600 (5 is the default), not -3"),
        BadInvocation(["join", "7KQ-M4X", "--peer", "127.0.0.1:1", "--timeout", "0"], says: "more than 0 and at most 600 (5 is the default), not 0"),
        BadInvocation(["join", "7KQ-M4X", "--peer", "127.0.0.1:1", "--timeout", "nan"], says: "more than 0 and at most 600 (5 is the default), not nan"),
        BadInvocation(["create", "--no-mdns"], env: ["LEVCHAT_HEARTBEAT_MS": "soon"], says: "LEVCHAT_HEARTBEAT_MS must be a whole number"),
        BadInvocation(["launch"], says: "there is no command 'launch': the commands are create, join and doctor"),
        // The `join` forgotten, and a misspelt command: what to run instead.
        BadInvocation(["7kq-m4x"], says: "to join the room 7KQ-M4X, run: levchat-peer join 7KQ-M4X"),
        BadInvocation(["7kq", "m4x"], says: "to join the room 7KQ-M4X, run: levchat-peer join 7KQ-M4X"),
        BadInvocation(["7KQ-M4X", "--peer", "127.0.0.1:1"], says: "to join the room 7KQ-M4X, run: levchat-peer join 7KQ-M4X"),
        BadInvocation(["jion", "7KQ-M4X"], says: "there is no command 'jion'; did you mean 'levchat-peer join'?"),
        BadInvocation(["creat"], says: "did you mean 'levchat-peer create'?"),
        BadInvocation(["docter"], says: "did you mean 'levchat-peer doctor'?"),
        BadInvocation(["x\u{1B}[2J"], says: "there is no command 'x\\x1B[2J'"),
        BadInvocation(["join"], says: "code"),
        BadInvocation(["create", "--no-mdns", "--color", "sometimes"], says: "--color"),
        BadInvocation(["doctor", "--listen", "0"], says: "--listen takes seconds, more than 0 and at most 60 (3 is the default), not 0"),
        BadInvocation(["doctor", "--listen", "-1"], says: "more than 0 and at most 60 (3 is the default), not -1"),
        BadInvocation(["doctor", "--listen", "100000"], says: "more than 0 and at most 60 (3 is the default), not 100000"),
    ])
    func badInputIsOneClearSentence(_ bad: BadInvocation) async throws {
        let peer = try PeerProcess("cli", bad.arguments, environment: bad.environment)
        defer { peer.stop() }
        let status = try await peer.waitForExit()
        #expect(status == 64)
        #expect(peer.errorText.contains(bad.says), "\(peer.errorText)")
        #expect(!peer.errorText.contains("Fatal error") && !peer.errorText.contains("Backtrace"))
    }

    /// A socket listening on a free port of 127.0.0.1, and the port.
    static func listening() throws -> (socket: Int32, port: Int) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard bound else {
            close(listener)
            throw Spawn.Failure.failed("cannot listen on 127.0.0.1", errno)
        }
        return (listener, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A port already taken, or an address that is not this machine's: one sentence that says
    /// which, and the network's exit code (69), not an internal error's (70) with the socket
    /// call's own text.
    @Test func aRoomThatCannotListenSaysWhy() async throws {
        let (taken, port) = try Self.listening()
        defer { close(taken) }
        for (arguments, says) in [
            (["--bind", "127.0.0.1", "--port", String(port)], "could not listen on 127.0.0.1:\(port): that port is in use here, by another room or program"),
            (["--bind", "192.0.2.1"], "could not listen on 192.0.2.1:0: that address is not one of this machine's"),
        ] {
            let peer = try PeerProcess("cli", ["create", "--no-mdns"] + arguments)
            defer { peer.stop() }
            #expect(try await peer.waitForExit() == 69)
            #expect(peer.errorText.contains(says), "\(peer.errorText)")
            #expect(!peer.errorText.contains("errno") && !peer.errorText.contains("descriptor"), "\(peer.errorText)")
        }
    }

    /// `--peer` at a port where another program listens (an ssh server greets first): one
    /// sentence that says so, and the network's exit code, not an internal error's with the frame
    /// decoder's text.
    @Test func aPortWhereSomethingElseAnswersIsNotARoom() async throws {
        let (listener, port) = try Self.listening()
        defer { close(listener) }
        // Greets each caller as sshd does, then waits for it to hang up.
        let server = Thread {
            while true {
                let caller = accept(listener, nil, nil)
                guard caller >= 0 else { return }
                let greeting = Array("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".utf8)
                _ = write(caller, greeting, greeting.count)
                var sink = [UInt8](repeating: 0, count: 256)
                while read(caller, &sink, sink.count) > 0 {}
                close(caller)
            }
        }
        server.start()
        let peer = try PeerProcess("cli", ["join", "7KQ-M4X", "--peer", "127.0.0.1:\(port)", "--bind", "127.0.0.1"])
        defer { peer.stop() }
        #expect(try await peer.waitForExit() == 69)
        // The user's sentence (the tests log at info, where the decoder's own words are kept).
        let said = peer.errorText.split(separator: "\n").filter { $0.hasPrefix("levchat-peer:") && !$0.contains("made your identity") }
        #expect(said.count == 1 && said[0].contains("127.0.0.1:\(port) is not a levchat room: something else answered there"), "\(peer.errorText)")
        #expect(!said.contains { $0.contains("frame") || $0.contains("malformed") }, "\(peer.errorText)")
        shutdown(listener, Int32(SHUT_RDWR))
    }

    @Test func helpAndVersionWork() async throws {
        let help = try PeerProcess("help", ["--help"])
        defer { help.stop() }
        #expect(try await help.waitForExit() == 0)
        let text = help.outputLines.joined(separator: "\n")
        #expect(text.contains("create") && text.contains("join") && text.contains("Exit codes"))

        let version = try PeerProcess("version", ["--version"])
        defer { version.stop() }
        #expect(try await version.waitForExit() == 0)
        #expect(version.outputLines.first?.range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression) != nil)
    }

    /// No module of levchat-peer imports full Foundation, so ICU (40 MB of the package's binary
    /// before) is neither linked nor loaded (Docs/ARCHITECTURE.md, "Foundation"). ldd lists what
    /// the binary needs and what those need in turn.
    @Test func theBinaryLoadsNoICU() async throws {
        let ldd = try PeerProcess("ldd", [PeerProcess.binary.path], prefix: ["/usr/bin/ldd"], runsBinary: false)
        defer { ldd.stop() }
        #expect(try await ldd.waitForExit() == 0)
        let libraries = ldd.outputLines.joined(separator: "\n")
        // What it does need, so that the check reads a real list.
        #expect(libraries.contains("libFoundationEssentials.so"), "\(libraries)")
        for heavy in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            #expect(!libraries.contains(heavy), "levchat-peer loads \(heavy):\n\(libraries)")
        }
    }

    @Test(arguments: ["bash", "zsh", "fish"])
    func completionScripts(_ shell: String) async throws {
        let script = try PeerProcess("completion", ["--generate-completion-script", shell])
        defer { script.stop() }
        #expect(try await script.waitForExit() == 0)
        let text = script.outputLines.joined(separator: "\n")
        for word in ["levchat-peer", "join", "create", "doctor", "peer", "color", "no-bell"] { #expect(text.contains(word), "\(shell): \(word)") }
        if shell == "bash" {
            // The script parses as bash.
            let check = try PeerProcess("bash -n", ["-n", "-c", text], prefix: ["/bin/bash"], runsBinary: false)
            defer { check.stop() }
            #expect(try await check.waitForExit() == 0, "\(check.errorText)")
        }
    }

    /// Docs/levchat-peer.1 describes every option `--help` shows and every exit code, and groff
    /// reads it without a warning.
    @Test func theManualPageIsComplete() async throws {
        let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Docs/levchat-peer.1")
        let roff = try String(contentsOf: page, encoding: .utf8)
        let manual = roff.replacingOccurrences(of: "\\-", with: "-")
        for command in ["create", "join", "doctor"] {
            let help = try PeerProcess("help", [command, "--help"])
            defer { help.stop() }
            #expect(try await help.waitForExit() == 0)
            let options = Set(help.outputLines.joined(separator: " ").matches(of: /--[a-z][a-z-]+/).map { String($0.output) })
            #expect(options.count >= 3, "\(command): \(options)")
            for option in options { #expect(manual.contains(option), "\(command) \(option) is not in the manual page") }
        }
        for code in [0, 64, 65, 66, 67, 68, 69, 70, 71] { #expect(manual.contains(".B \(code)\n"), "exit code \(code)") }
        for command in ["/me", "/nick", "/code", "/who", "/send", "/get", "/files", "/cancel", "/help", "/quit"] { #expect(manual.contains(command), "\(command)") }
        let groff = try PeerProcess("groff", ["-man", "-ww", "-z", page.path], prefix: ["/usr/bin/groff"], runsBinary: false)
        defer { groff.stop() }
        #expect(try await groff.waitForExit() == 0)
        #expect(groff.errorText.isEmpty, "\(groff.errorText)")
    }
}
