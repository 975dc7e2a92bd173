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
        let command = parts.first.map(String.init)?.lowercased() ?? ""
        let argument = parts.count > 1 ? String(parts[1]).trimmingWhitespace() : ""
        switch command {
        case "me": self = argument.isEmpty ? .usage("/me ACTION, for example: /me waves") : .act(argument)
        case "nick", "name": self = argument.isEmpty ? .usage("/nick NEW, for example: /nick robert") : .nick(argument)
        case "code": self = .code
        case "who", "members", "names": self = .who
        case "whois": self = argument.isEmpty ? .usage("/whois NAME, for example: /whois bob") : .whois(argument)
        case "history", "log":
            if argument.isEmpty { self = .history(InputLine.defaultHistoryCount) }
            else if argument.lowercased() == "all" { self = .history(Int.max) }
            else if let count = Int(argument), count > 0 { self = .history(count) }
            else { self = .usage("/history [N|all], for example: /history 50") }
        case "help", "?": self = .help
        case "quit", "exit", "leave", "q": self = .quit
        default: self = .unknownCommand(command)
        }
    }

    /// How many messages `/history` shows without an argument.
    public static let defaultHistoryCount = 20

    /// What Tab completes at the start of a line.
    public static let commands = ["/me", "/nick", "/code", "/who", "/whois", "/history", "/help", "/quit"]

    public static let helpText = """
        Commands:
          /me ACTION  say what you do: /me waves shows * bob waves
          /nick NEW   take a new name in the room (everyone sees it)
          /code       show the room code again, to share
          /who        list the members of the room (the host is marked) with their key fingerprints
          /whois NAME a member's whole key fingerprint, and since when this peer knows it
          /history N  the room's last N messages (20; all: everything kept), in the room's order
          /help       show this help
          /quit       leave the room (Ctrl-D and Ctrl-C leave too)
          //text      send a line that starts with a slash
        Anything else you type is sent to the room.
        """
}
