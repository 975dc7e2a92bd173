#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import LevChatCore
import Synchronization

/// What the user does: a line, the end of input, or an interrupt (Ctrl-C / SIGTERM).
public enum UserInput: Sendable, Equatable {
    case line(String)
    case endOfInput
    case interrupt
}

/// Reads what the user types on a dedicated thread and turns SIGINT, SIGTERM and SIGHUP into
/// `.interrupt`, so every way of leaving goes through one path. Lines come from stdin as they are
/// (a terminal, a pipe or a regular file), or, with a `TerminalScreen`, key by key through the
/// line editor in raw mode (Docs/CLI.md, "The terminal chat").
///
/// Lines from a pipe or a file are read at most `readAhead` ahead of the room: the reader waits
/// for `consumed()` before it reads more, so a pasted file waits in its pipe while the send window
/// is full (Docs/PROTOCOL.md, "Flow control"). Interrupts are also on a stream of their own, so a
/// wait for the window ends at once.
public final class StandardInput: Sendable {
    public let events: AsyncStream<UserInput>
    public let interrupts: AsyncStream<Void>
    private let pace: InputPace?
    private let signalSources: Mutex<[any DispatchSourceSignal]>
    private let scriptedEvents: AsyncStream<UserInput>.Continuation?
    private let scriptedInterrupts: AsyncStream<Void>.Continuation?

    /// `whenOutputIsGone`: said once when nothing reads stdout any more (`StandardOutputWatch`),
    /// just before the run leaves as it does at the end of input: the lines it took still go out
    /// and are echoed first (a signal would give that wait up once input has ended).
    public init(screen: TerminalScreen? = nil, readAhead: Int = 16, whenOutputIsGone: (@Sendable () -> Void)? = nil) {
        let (events, continuation) = AsyncStream.makeStream(of: UserInput.self)
        let (interrupts, interruptions) = AsyncStream.makeStream(of: Void.self)
        self.events = events
        self.interrupts = interrupts
        (scriptedEvents, scriptedInterrupts) = (nil, nil)
        let interrupt: @Sendable () -> Void = {
            continuation.yield(.interrupt)
            interruptions.yield()
        }
        var sources: [any DispatchSourceSignal] = [SIGINT, SIGTERM, SIGHUP].map { signo in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler(handler: interrupt)
            source.resume()
            return source
        }
        if let whenOutputIsGone {
            StandardOutputWatch.start {
                whenOutputIsGone()
                continuation.yield(.endOfInput)
            }
        }
        if let screen, RawTerminal.enter() {
            pace = nil
            signal(SIGWINCH, SIG_IGN)
            let resized = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
            resized.setEventHandler { screen.resize(columns: RawTerminal.columns(), rows: RawTerminal.rows()) }
            resized.resume()
            sources.append(resized)
            screen.start()
            OSThread.start(name: "levchat-keys") { StandardInput.readKeys(into: screen, continuation, interrupt: interrupt) }
        } else {
            let pace = InputPace(credits: readAhead)
            self.pace = pace
            OSThread.start(name: "levchat-input") {
                StandardInput.readLines(pace: pace, continuation)
            }
        }
        signalSources = Mutex(sources)
    }

    /// The longest line kept whole from a pipe or a file: far more than a message may be (the room
    /// says so of a longer one), far less than memory. `readLine` kept whatever came, and
    /// `levchat-peer create < /dev/zero` took 3 GB in three seconds.
    static let longestLine = 65_536

    /// Lines from a pipe or a file, one taken per credit of `pace`, until the end of input.
    private static func readLines(pace: InputPace, _ continuation: AsyncStream<UserInput>.Continuation) {
        var splitter = LineSplitter(limit: longestLine)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var lines: [String] = []
        var next = 0
        var ended = false
        while true {
            if next == lines.count {
                guard !ended else { break }
                let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count > 0 {
                    lines = buffer.withUnsafeBytes { splitter.feed(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                } else {
                    lines = splitter.finish().map { [$0] } ?? []
                    ended = true
                }
                next = 0
                continue
            }
            _ = pace.take()
            continuation.yield(.line(lines[next]))
            next += 1
        }
        continuation.yield(.endOfInput)
    }

    /// Input from the program itself (in-process tests): no thread, no signal handlers; `type`
    /// gives it lines, the end of input and interrupts.
    public static func scripted() -> StandardInput { StandardInput(typedByProgram: ()) }

    private init(typedByProgram: Void) {
        (events, scriptedEvents) = AsyncStream.makeStream(of: UserInput.self)
        (interrupts, scriptedInterrupts) = AsyncStream.makeStream(of: Void.self)
        pace = nil
        signalSources = Mutex([])
    }

    /// What a script does, as a user would: a line, the end of input, Ctrl-C.
    public func type(_ event: UserInput) {
        scriptedEvents?.yield(event)
        if event == .interrupt { scriptedInterrupts?.yield() }
    }

    /// The room has taken a line: the reader may read one more.
    public func consumed() {
        pace?.give()
    }

    /// Puts the terminal back as it was (a no-op when it was never changed); the CLI calls it
    /// before its last words, and `atexit` calls it again on any other way out.
    public func restoreTerminal() {
        RawTerminal.restore()
    }

    /// Keys until the end of input. After Ctrl-C, and after Ctrl-D, it goes on reading, but only
    /// for Ctrl-C, which gives up waiting (for the host's echoes, for downloads under way): with
    /// the terminal raw, nothing else turns that key into SIGINT, and after Ctrl-D a run waiting on
    /// a frozen host or a long download could not be stopped but from another terminal.
    private static func readKeys(into screen: TerminalScreen, _ continuation: AsyncStream<UserInput>.Continuation,
                                 interrupt: @Sendable () -> Void) {
        var decoder = KeyDecoder()
        // After Ctrl-C or Ctrl-D: only another Ctrl-C counts.
        var onlyInterrupts = false
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                continuation.yield(.endOfInput)
                return
            }
            for key in decoder.feed(Array(buffer[..<count])) {
                if onlyInterrupts {
                    if key == .interrupt { interrupt() }
                    continue
                }
                switch screen.handle(key) {
                case .submit(let line): continuation.yield(.line(line))
                case .interrupt:
                    onlyInterrupts = true
                    interrupt()
                case .endOfInput:
                    continuation.yield(.endOfInput)
                    onlyInterrupts = true
                case .redraw, .none: break
                }
            }
        }
    }
}

/// Watches stdout when it is a pipe or a socket and calls `gone` once its reader has gone
/// (`levchat-peer join CODE | head`, a `| jq` that died): a peer nobody reads stayed in the room,
/// unseen and silent, until its input ended, its writes failing one by one. A thread blocked in
/// poll(2) for nothing but POLLERR and POLLHUP, which Linux reports on a pipe's write end once its
/// last reader is closed (and on a socket whose other end is gone). A terminal's end is SIGHUP; a
/// regular file has no reader to lose.
enum StandardOutputWatch {
    static func start(_ gone: @escaping @Sendable () -> Void) {
        var status = stat()
        guard fstat(STDOUT_FILENO, &status) == 0 else { return }
        let kind = status.st_mode & S_IFMT
        guard kind == S_IFIFO || kind == S_IFSOCK else { return }
        OSThread.start(name: "levchat-stdout") {
            var watched = pollfd(fd: STDOUT_FILENO, events: 0, revents: 0)
            while true {
                let ready = poll(&watched, 1, -1)
                if ready < 0 && errno == EINTR { continue }
                // With no events asked for, only an error or a hang-up wakes it.
                if ready > 0 { gone() }
                return
            }
        }
    }
}

/// How many more lines the reader thread may read before the room takes one: it blocks (on its
/// own thread, never the event loop) while there are none.
final class InputPace: Sendable {
    private let credits: Mutex<Int>
    private let condition = ThreadCondition()

    init(credits: Int) {
        self.credits = Mutex(credits)
    }

    /// Waits for a credit and takes it; always true (so it reads as a loop condition).
    func take() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while credits.withLock({ $0 }) <= 0 { condition.wait() }
        credits.withLock { $0 -= 1 }
        return true
    }

    func give() {
        condition.lock()
        credits.withLock { $0 += 1 }
        condition.signal()
        condition.unlock()
    }
}

/// The terminal's raw mode for the line editor, and the settings to put back on every way out.
public enum RawTerminal {
    private static let saved = Mutex<termios?>(nil)

    /// Whether the line editor can run: stdin and stdout are a terminal that can do more than a
    /// teletype.
    public static var isInteractive: Bool {
        guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else { return false }
        let term = getenv("TERM").map { String(cString: $0) } ?? ""
        return !term.isEmpty && term != "dumb"
    }

    /// Columns of the terminal on stdout (80 when it will not say).
    public static func columns() -> Int {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    /// Rows of the terminal on stdout (24 when it will not say).
    public static func rows() -> Int {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 else { return 24 }
        return Int(size.ws_row)
    }

    /// Keys arrive one by one and unechoed; Ctrl-C, Ctrl-Z and Ctrl-S are plain keys. Output
    /// processing stays on, so "\n" still starts a new line.
    static func enter() -> Bool {
        var original = termios()
        guard tcgetattr(STDIN_FILENO, &original) == 0 else { return false }
        var raw = original
        raw.c_iflag &= ~tcflag_t(BRKINT | ICRNL | INPCK | ISTRIP | IXON)
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | IEXTEN | ISIG)
        raw.c_cflag |= tcflag_t(CS8)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        saved.withLock { $0 = original }
        atexit { RawTerminal.restore() }
        return tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0
    }

    static func restore() {
        guard var original = saved.withLock({ saved in defer { saved = nil }; return saved }) else { return }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
    }
}
