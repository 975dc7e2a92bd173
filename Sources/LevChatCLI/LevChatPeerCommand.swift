import ArgumentParser
import LevChatCore

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

    static let commands = ["create", "join", "doctor"]

    /// What a user types in place of a command gets a sentence that says what to run instead (the
    /// parser's own was "2 unexpected arguments"): a room code (`levchat-peer 7KQ-M4X`, the `join`
    /// forgotten) or a misspelt command (`jion`). Checked before the parser, which would take a
    /// positional argument of this command in place of every subcommand.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let first = arguments.first, !first.hasPrefix("-"), !(commands + ["help"]).contains(first) {
            Self.exit(withError: ValidationError(strayCommand(arguments)))
        }
        await Self.main(nil)
    }

    static func strayCommand(_ arguments: [String]) -> String {
        let first = arguments[0]
        // The code alone, or in words (`7kq m4x`), with options after it or not.
        let words = arguments.prefix { !$0.hasPrefix("-") }
        let code = (try? RoomCode(parsing: words.joined(separator: " "))) ?? (try? RoomCode(parsing: first))
        let shown = ScreenText(escaping: first).rendered
        // Many six-letter words are codes too (`docter` reads as D0C-TER): a word near a command
        // is taken for a typo of it, and the code still mentioned.
        if let near = commands.first(where: { editDistance(first.lowercased(), $0) <= 2 }) {
            let orCode = code.map { " (or, to join the room \($0): levchat-peer join \($0))" } ?? ""
            return "there is no command '\(shown)'; did you mean 'levchat-peer \(near)'?\(orCode)"
        }
        if let code { return "to join the room \(code), run: levchat-peer join \(code)" }
        return "there is no command '\(shown)': the commands are create, join and doctor"
    }

    /// Levenshtein distance, for the command a typo was meant to be.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }
}
