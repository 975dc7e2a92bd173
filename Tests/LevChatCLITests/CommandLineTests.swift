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
        BadInvocation(["create", "--no-mdns", "--port", "70000"], says: "--port must be from 0 to 65535"),
        BadInvocation(["create", "--no-mdns", "--port", "seven"], says: "--port"),
        BadInvocation(["create", "--no-mdns"], env: ["LEVCHAT_HEARTBEAT_MS": "soon"], says: "LEVCHAT_HEARTBEAT_MS must be a whole number"),
        BadInvocation(["launch"], says: "launch"),
        BadInvocation(["join"], says: "code"),
    ])
    func badInputIsOneClearSentence(_ bad: BadInvocation) async throws {
        let peer = try PeerProcess("cli", bad.arguments, environment: bad.environment)
        defer { peer.stop() }
        let status = try await peer.waitForExit()
        #expect(status == 64)
        #expect(peer.errorText.contains(bad.says), "\(peer.errorText)")
        #expect(!peer.errorText.contains("Fatal error") && !peer.errorText.contains("Backtrace"))
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
}
