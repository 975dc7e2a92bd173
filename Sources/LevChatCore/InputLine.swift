/// One line a user typed: chat text or a `/`-command. `//text` sends `/text` literally.
public enum InputLine: Equatable, Sendable {
    case say(String)
    case who
    case help
    case quit
    case unknownCommand(String)
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
        let command = line.dropFirst().split(separator: " ", maxSplits: 1).first.map(String.init)?.lowercased() ?? ""
        switch command {
        case "who", "members", "names": self = .who
        case "help", "?": self = .help
        case "quit", "exit", "leave", "q": self = .quit
        default: self = .unknownCommand(command)
        }
    }

    public static let helpText = """
        Commands:
          /who      list the members of the room (the host is marked)
          /help     show this help
          /quit     leave the room (Ctrl-D and Ctrl-C leave too)
          //text    send a line that starts with a slash
        Anything else you type is sent to the room.
        """
}
