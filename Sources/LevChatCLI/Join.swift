import ArgumentParser
import LevChatCore
import LevChatPeer
import Logging

struct Join: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join a room by its code.")

    @Argument(help: "The room code, like 7KQ-M4X (case, spaces and dashes do not matter).")
    var code: [String]

    @Option(help: "Connect to the room's host at HOST:PORT instead of finding it over mDNS.")
    var peer: String?

    @OptionGroup var options: CommonOptions

    func validate() throws {
        _ = try roomCode()
        _ = try endpoint()
        _ = try options.settings(port: 0)
    }

    func run() async throws {
        let code = try roomCode()
        let settings = try options.settings(port: 0)
        options.bootstrapLogging()
        let console = Console(json: settings.json)
        let input = StandardInput()
        let target = try endpoint()
        let outcome = await Peer.join(code: code, host: target.host, port: target.port, settings: settings,
                                      console: console, logger: Logger(label: "levchat"), input: input.events)
        throw ExitCode(OutcomeReport.report(outcome, console: console))
    }

    private func roomCode() throws -> RoomCode {
        do {
            return try RoomCode(parsing: code.joined(separator: " "))
        } catch {
            throw ValidationError(error.description)
        }
    }

    private func endpoint() throws -> (host: String, port: Int) {
        guard let peer else {
            throw ValidationError("this build cannot find rooms over mDNS yet: pass --peer HOST:PORT (the host prints its port)")
        }
        guard let endpoint = Endpoint.parse(peer) else {
            throw ValidationError("--peer takes HOST:PORT (for example 192.168.1.20:7000 or [fe80::1%eth0]:7000), not '\(peer)'")
        }
        return endpoint
    }
}
