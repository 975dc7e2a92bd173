import ArgumentParser

@main
struct LevChatPeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "levchat-peer",
        abstract: "A serverless chat room for the people on one LAN.",
        discussion: """
            One person runs 'levchat-peer create' and shares the room code; others run \
            'levchat-peer join CODE'. Type lines to chat; /help lists the commands.
            Exit codes: 0 left or room closed, 64 bad command line, 65 wrong room code, \
            66 no room with that code found, 67 refused by the room (name taken, room full), \
            68 incompatible version, 69 network failure or host lost, 70 internal or protocol error, \
            71 avahi-daemon not available.
            """,
        version: "0.1.0",
        subcommands: [Create.self, Join.self, Doctor.self]
    )
}
