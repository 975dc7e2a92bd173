#if canImport(Glibc)
import Glibc
#endif
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

    /// What stdin is when it is sure to end before anything is typed (`< /dev/null`, as nohup,
    /// cron and systemd start programs, or closed): a room made so is gone at once, without a
    /// word, and whoever started it in the background for others meant it to stay.
    static func inputThatEndsAtOnce() -> String? {
        var input = stat(), null = stat()
        guard fstat(STDIN_FILENO, &input) == 0 else { return "closed" }
        guard input.st_mode & S_IFMT == S_IFCHR, stat("/dev/null", &null) == 0, input.st_rdev == null.st_rdev else { return nil }
        return "/dev/null"
    }

    func run() async throws {
        var settings = try options.settings(port: port)
        settings.codeLength = codeLength
        let advertise = !noMDNS
        throw ExitCode(await options.run(.creating, name: settings.name) { [settings] console, input, store in
            var settings = settings
            settings.offeredFiles = store.offeredFiles
            if let input = Create.inputThatEndsAtOnce() {
                console.diagnostic("levchat-peer: standard input is \(input), so the room ends as soon as it is made (a host leaves at the end of its input); "
                                   + "to host without typing, give it input that stays open: sleep infinity | levchat-peer create")
            }
            return await Peer.create(settings: settings, identity: store.identity, advertise: advertise, console: console, logger: Logger(label: "levchat"), input: input)
        })
    }
}
