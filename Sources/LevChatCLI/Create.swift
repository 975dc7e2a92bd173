import ArgumentParser
import LevChatCore
import LevChatPeer
import Logging

struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a room with a new random code and host it.")

    @OptionGroup var options: CommonOptions

    @Option(parsing: .unconditional, help: "TCP port to listen on (default: any free port).")
    var port: Int = 0

    @Flag(name: .customLong("no-mdns"), help: "Do not advertise the room on the LAN; others join with --peer HOST:PORT.")
    var noMDNS = false

    @Option(name: .customLong("code-length"), parsing: .unconditional, help: "Characters in the room code: 6 (30 bits, the default), 9 or 12, for a room that wants more against guessing.")
    var codeLength: Int = RoomCode.length

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535, not \(port)") }
        guard RoomCode.lengths.contains(codeLength) else { throw ValidationError("--code-length must be 6, 9 or 12, not \(codeLength)") }
        _ = try options.settings(port: port)
    }

    func run() async throws {
        var settings = try options.settings(port: port)
        settings.codeLength = codeLength
        let advertise = !noMDNS
        throw ExitCode(await options.run(.creating, name: settings.name) { [settings] console, input, store in
            var settings = settings
            settings.offeredFiles = store.offeredFiles
            return await Peer.create(settings: settings, identity: store.identity, advertise: advertise, console: console, logger: Logger(label: "levchat"), input: input)
        })
    }
}
