/// One line a user typed: chat text or a `/`-command. `//text` sends `/text` literally.
public enum InputLine: Equatable, Sendable {
    case say(String)
    /// `/me waves`: an action, shown as `* bob waves`.
    case act(String)
    /// `/nick NEW`: a new name in the room.
    case nick(String)
    /// `/code`: the room code again, to share.
    case code
    case who
    /// `/whois NAME`: a member's whole key fingerprint.
    case whois(String)
    /// `/history [N]`: the room's last N messages as this peer holds them, in the room's order.
    case history(Int)
    case help
    case quit
    /// `/send PATH [NAME]`: offer a file to the room, or to the member called NAME (Docs/CLI.md, "Files").
    case send(path: String, to: String?)
    /// `/get ID [DIR]`: fetch offer ID, into DIR or the downloads directory.
    case get(Int, into: String?)
    /// `/files`: the offers still open.
    case files
    /// `/cancel ID`: stop a transfer of offer ID (fetching it, or serving it). `/cancel` alone
    /// (nil): stop the `/send`s still being read for their offers; with none, the one transfer
    /// under way.
    case cancel(Int?)
    case unknownCommand(String)
    /// A command without the argument it needs; the text is its usage.
    case usage(String)
    case empty

    public init(parsing line: String) {
        if line.hasPrefix("//") {
            self = .say(String(line.dropFirst()))
            return
        }
        guard line.hasPrefix("/") else {
            self = line.trimmingWhitespace().isEmpty ? .empty : .say(line)
            return
        }
        let parts = line.dropFirst().split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts.first.map(String.init)?.lowercased() ?? ""
        let argument = parts.count > 1 ? String(parts[1]).trimmingWhitespace() : ""
        guard let command = ChatCommand.table.first(where: { $0.names.contains(name) }) else {
            self = .unknownCommand(name)
            return
        }
        self = command.parse(argument) ?? .usage(command.usage)
    }

    /// How many messages `/history` shows without an argument.
    public static let defaultHistoryCount = 20

    /// What Tab completes at the start of a line.
    public static let commands = ChatCommand.table.map { "/" + $0.names[0] }

    public static let helpText = "Commands:\n"
        + ChatCommand.table.map { "  " + $0.synopsis.padded(to: 18) + $0.summary }.joined(separator: "\n")
        + "\n  " + "//text".padded(to: 18) + "send a line that starts with a slash"
        + "\nAnything else you type is sent to the room."

    /// What the line asks of the peer's file desk (offers and transfers); nil for the rest.
    public var fileCommand: FileCommand? {
        switch self {
        case .send(let path, let name): .send(path: path, to: name)
        case .get(let id, let directory): .get(id, into: directory)
        case .files: .files
        case .cancel(let id): .cancel(id)
        case .say, .act, .nick, .code, .who, .whois, .history, .help, .quit, .unknownCommand, .usage, .empty: nil
        }
    }

    /// Whether the answer depends on the room as this peer holds it (its members, history and
    /// offers), so a line typed or piped before the room is entered waits until it is:
    /// `echo /history | levchat-peer join CODE` answered an empty history. Lines to say are queued
    /// until then anyway, and `/quit` leaves right behind the join.
    public var needsTheRoom: Bool {
        switch self {
        case .nick, .who, .whois, .history, .send, .get, .files, .cancel: true
        case .say, .act, .code, .help, .quit, .unknownCommand, .usage, .empty: false
        }
    }

    /// What the line asks of whichever role holds the room (host or member); nil for what the
    /// console answers by itself. Exhaustive, so a new command is a compile error until it is
    /// placed.
    public var roomRequest: RoomRequest? {
        switch self {
        case .say(let text): .say(text)
        case .act(let text): .act(text)
        case .nick(let name): .nick(name)
        case .who: .who
        case .whois(let name): .whois(name)
        case .history(let count): .history(count)
        case .quit: .quit
        case .code, .help, .send, .get, .files, .cancel, .unknownCommand, .usage, .empty: nil
        }
    }
}

/// A line's request about files (`InputLine.fileCommand`; Docs/CLI.md, "Files").
public enum FileCommand: Equatable, Sendable {
    case send(path: String, to: String?)
    case get(Int, into: String?)
    case files
    case cancel(Int?)
}

/// A line's request to the room's role (`InputLine.roomRequest`).
public enum RoomRequest: Equatable, Sendable {
    case say(String)
    case act(String)
    case nick(String)
    case who
    case whois(String)
    case history(Int)
    case quit
    /// A file offer's text (`FileOffer.text`), posted as an `offer` record.
    case offer(String)
}

/// The one table of `/`-commands: their names, their help and how each reads its argument. The
/// parser, Tab completion and `/help` all come from here (Docs/CLI.md lists the same).
public struct ChatCommand: Sendable {
    /// The first is the name shown; the rest are aliases.
    public let names: [String]
    /// The command as `/help` shows it, with its argument.
    public let synopsis: String
    public let summary: String
    /// What a missing or bad argument gets: the usage, with an example.
    public let usage: String
    /// The parsed line from the (trimmed) argument; nil when the argument is wrong.
    let parse: @Sendable (String) -> InputLine?

    /// What `/NAME` gets when it is no command here: why, for the commands of other chat programs
    /// that have no place in a room like this one (someone used to IRC types `/msg bob …` and
    /// should learn that every line goes to the whole room), else a pointer to `/help`.
    public static func unknown(_ name: String) -> String {
        let why: String? = switch name {
        case "msg", "query", "privmsg", "notice", "tell", "whisper", "w", "dm", "pm":
            "there are no private messages here: every line goes to the whole room (/send PATH NAME gives a file to one member)"
        case "join":
            "a run is in one room: for another, run levchat-peer join CODE in another terminal"
        case "part", "bye", "logout", "disconnect":
            "/quit leaves the room"
        case "kick", "ban", "kickban", "mute", "block", "ignore":
            "nobody can be put out of a room: whoever has the code can join; to leave someone out, make a new room (levchat-peer create) and share its code with the others alone"
        case "clear", "cls":
            "Ctrl-L clears the screen"
        case "list":
            "/who lists the members, /files the open offers"
        default: nil
        }
        return "unknown command /\(name); " + (why.map { $0 + "; " } ?? "") + "/help lists the commands"
    }

    public static let table: [ChatCommand] = [
        ChatCommand(names: ["me"], synopsis: "/me ACTION", summary: "say what you do: /me waves shows * bob waves",
                    usage: "/me ACTION, for example: /me waves") { $0.isEmpty ? nil : .act($0) },
        ChatCommand(names: ["nick", "name"], synopsis: "/nick NEW", summary: "take a new name in the room (everyone sees it)",
                    usage: "/nick NEW, for example: /nick robert") { name(in: $0).map(InputLine.nick) },
        ChatCommand(names: ["code"], synopsis: "/code", summary: "show the room code again, to share",
                    usage: "/code") { _ in .code },
        ChatCommand(names: ["who", "members", "names"], synopsis: "/who",
                    summary: "list the members of the room (the host is marked) with their key fingerprints",
                    usage: "/who") { _ in .who },
        ChatCommand(names: ["whois"], synopsis: "/whois NAME", summary: "a member's whole key fingerprint, and since when this peer knows it",
                    usage: "/whois NAME, for example: /whois bob") { name(in: $0).map(InputLine.whois) },
        ChatCommand(names: ["history", "log"], synopsis: "/history N",
                    summary: "the room's last N messages (20; all: everything kept), in the room's order",
                    usage: "/history [N|all], for example: /history 50") { argument in
            if argument.isEmpty { return .history(InputLine.defaultHistoryCount) }
            if argument.lowercased() == "all" { return .history(Int.max) }
            if let count = Int(argument), count > 0 { return .history(count) }
            return nil
        },
        ChatCommand(names: ["send"], synopsis: "/send PATH [NAME]",
                    summary: "offer a file or folder to the room, or to NAME only (quote a path with spaces)",
                    usage: "/send PATH [NAME], for example: /send \"my report.pdf\" or /send notes.txt \"bob smith\"") { argument in
            guard let words = ShellWords.split(argument), (1...2).contains(words.count), !words[0].isEmpty else { return nil }
            return .send(path: words[0], to: words.count == 2 ? words[1] : nil)
        },
        ChatCommand(names: ["get"], synopsis: "/get ID [DIR]", summary: "download offer ID (into DIR, else --downloads)",
                    usage: "/get ID [DIR], for example: /get 3") { argument in
            guard let words = ShellWords.split(argument), (1...2).contains(words.count), let id = Int(words[0]), id > 0 else { return nil }
            return .get(id, into: words.count == 2 ? words[1] : nil)
        },
        ChatCommand(names: ["files"], synopsis: "/files", summary: "list the file offers still open", usage: "/files") { _ in .files },
        ChatCommand(names: ["cancel"], synopsis: "/cancel [ID]",
                    summary: "stop a transfer of offer ID (either side); alone: a /send being read, else the only transfer",
                    usage: "/cancel ID, for example: /cancel 3 (/cancel alone stops a /send being read, else the only transfer)") { argument in
            if argument.isEmpty { return .cancel(nil) }
            guard let id = Int(argument), id > 0 else { return nil }
            return .cancel(id)
        },
        ChatCommand(names: ["help", "?"], synopsis: "/help", summary: "show this help", usage: "/help") { _ in .help },
        ChatCommand(names: ["quit", "exit", "leave", "q"], synopsis: "/quit", summary: "leave the room (Ctrl-D and Ctrl-C leave too)",
                    usage: "/quit") { _ in .quit },
    ]

    /// The name after `/nick` or `/whois`: the rest of the line as it is, or, when it is in quotes,
    /// what they hold (`/nick "bob smith"`, read as `/send` reads its words): quotes typed as
    /// a shell user types them were taken into the name. Nil for none (`/nick ''`).
    static func name(in argument: String) -> String? {
        if let first = argument.first, first == "\"" || first == "'", let words = ShellWords.split(argument), words.count == 1 {
            return words[0].isEmpty ? nil : words[0]
        }
        return argument.isEmpty ? nil : argument
    }
}

extension String {
    func padded(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
