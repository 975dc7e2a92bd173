import ArgumentParser
import LevChatCore
import LevChatPeer
import Logging

struct Join: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join a room by its code.")

    @Argument(help: ArgumentHelp(
        "The room code, like 7KQ-M4X (case, spaces and dashes do not matter).",
        discussion: "Left out, the code comes from LEVCHAT_CODE, or is asked for on the terminal without echo. An argument is visible to every local user in `ps`."))
    var code: [String] = []

    @Option(help: "Connect to the room's host at HOST:PORT instead of finding it over mDNS.")
    var peer: String?

    @Option(parsing: .unconditional, help: "Seconds to look for the room on the network before giving up.")
    var timeout: Double = 5

    @OptionGroup var options: CommonOptions

    func validate() throws {
        if !code.isEmpty || Environment().string("LEVCHAT_CODE") != nil {
            _ = try givenCode()
        } else if !CodePrompt.isAvailable {
            throw ValidationError("no room code: give it as an argument, in LEVCHAT_CODE, or run join on a terminal to be asked for it")
        }
        _ = try endpoint()
        guard timeout > 0 && timeout <= 600 else { throw ValidationError("--timeout takes seconds, more than 0 and at most 600 (5 is the default), not \(Self.seconds(timeout))") }
        _ = try options.settings(port: 0)
    }

    func run() async throws {
        let code = try givenCode() ?? promptedCode()
        var settings = try options.settings(port: 0)
        settings.discoveryTimeout = .milliseconds(Int64(timeout * 1000))
        let peer = try endpoint().map { Endpoint.format(host: $0.host, port: $0.port) }
        let settingsToUse = settings
        throw ExitCode(await options.run(.joining(code), name: settings.name) { console, input, store in
            var settings = settingsToUse
            settings.offeredFiles = store.offeredFiles
            return await Peer.join(code: code, peer: peer, settings: settings, identity: store.identity, console: console, logger: Logger(label: "levchat"), input: input)
        })
    }

    /// The code from the arguments, else from LEVCHAT_CODE; nil when neither has one.
    private func givenCode() throws -> RoomCode? {
        let text: String
        if !code.isEmpty {
            text = code.joined(separator: " ")
        } else if let fromEnvironment = Environment().string("LEVCHAT_CODE") {
            text = fromEnvironment
        } else {
            return nil
        }
        do {
            return try RoomCode(parsing: text)
        } catch {
            throw ValidationError(code.isEmpty ? "LEVCHAT_CODE: \(error.description)" : error.description)
        }
    }

    private func promptedCode() throws -> RoomCode {
        // A typo at the prompt asks again, as a password prompt does; three tries. The code's own
        // error says what was wrong with it.
        for attempt in 1...CodePrompt.tries {
            guard let line = CodePrompt.read() else { throw CodePrompt.giveUp("no room code was typed", afterPrompt: true) }
            guard !line.trimmingWhitespace().isEmpty else {
                if attempt == CodePrompt.tries { throw CodePrompt.giveUp("no room code was typed") }
                continue
            }
            do {
                return try RoomCode(parsing: line)
            } catch {
                if attempt == CodePrompt.tries { throw CodePrompt.giveUp(error.description) }
                CodePrompt.say("\(error.description); try again (Ctrl-C stops)")
            }
        }
        throw CodePrompt.giveUp("no room code was typed")
    }

    private func endpoint() throws -> (host: String, port: Int)? {
        guard let peer else { return nil }
        guard let endpoint = Endpoint.parse(peer) else {
            throw ValidationError("--peer takes HOST:PORT (for example 192.168.1.20:7000 or [fe80::1%eth0]:7000), not '\(peer)'")
        }
        return endpoint
    }

    /// Seconds as the user typed them: `0`, not `0.0`.
    static func seconds(_ value: Double) -> String {
        value.isFinite && value == value.rounded() && abs(value) < 1e15 ? "\(Int(value))" : "\(value)"
    }
}
