import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// Asks for the room code on the terminal without echoing it, so it shows neither on the screen
/// nor in `ps` (Docs/CLI.md). The terminal's settings are restored however the prompt ends,
/// Ctrl-C included.
enum CodePrompt {
    static var isAvailable: Bool { isatty(STDIN_FILENO) == 1 }

    /// The line typed, or nil at end of input.
    static func read() -> String? {
        var saved = termios()
        let canHide = tcgetattr(STDIN_FILENO, &saved) == 0
        if canHide {
            savedTerminal = saved
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            quiet.c_lflag |= tcflag_t(ECHONL)
            signal(SIGINT) { _ in
                tcsetattr(STDIN_FILENO, TCSANOW, &CodePrompt.savedTerminal)
                _exit(130)
            }
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        }
        let prompt = Array("Room code: ".utf8)
        _ = prompt.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        let line = readLine(strippingNewline: true)
        if canHide {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            signal(SIGINT, SIG_DFL)
        }
        return line
    }

    /// How many lines the prompt takes before it gives up.
    static let tries = 3

    /// A line to the user on standard error, where the prompt is.
    static func say(_ text: String) {
        let bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    /// The prompt gave up: the reason said as the CLI says a usage error (no usage text: the user
    /// typed no argument wrong), and its exit code. `afterPrompt`: the input ended on the
    /// prompt's own line (Ctrl-D), which the reason must not share.
    static func giveUp(_ reason: String, afterPrompt: Bool = false) -> ExitCode {
        say((afterPrompt ? "\n" : "") + "levchat-peer: " + reason)
        return ExitCode(OutcomeReport.Code.usage)
    }

    /// Read by the SIGINT handler above, which can capture nothing.
    nonisolated(unsafe) static var savedTerminal = termios()
}
