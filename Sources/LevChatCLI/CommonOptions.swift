import ArgumentParser
import LevChatCore
import LevChatPeer
import LevChatTransport
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Options every subcommand has.
struct CommonOptions: ParsableArguments {
    @Option(help: "Your name in the room (1-32 printable characters; default: your login name, numbered as pi-2 if a member has it).")
    var name: String?

    @Option(help: "IP address to listen on, and to connect from when it is one address (every peer listens, so it can take over as host); the default :: takes IPv6 and IPv4.")
    var bind: String = "::"

    @Flag(help: "Print one JSON object per line instead of text (see Docs/CLI.md).")
    var json = false

    @Option(help: "Colour names and events: auto (on a terminal, unless NO_COLOR is set), always or never.")
    var color: ColorChoice = .auto

    @Flag(name: .customLong("no-bell"), help: "Do not ring the terminal bell when a line mentions your name.")
    var noBell = false

    @Option(help: "Where /get puts files (default: the XDG download directory, else ~/Downloads).")
    var downloads: String?

    @Flag(help: "Use a throwaway key for this run: your identity, known_peers and offers (in $XDG_STATE_HOME/levchat) are neither read nor written.")
    var ephemeral = false

    /// This user's identity (`IdentityStore`), or a throwaway one; what to tell the user about it.
    func identity() -> (IdentityStore, [String]) {
        guard !ephemeral else { return (IdentityStore.ephemeral(), []) }
        do {
            let store = try IdentityStore.open()
            return (store, store.notes)
        } catch {
            return (IdentityStore.ephemeral(), ["\(error); this run uses a throwaway key (--ephemeral asks for one without this note)"])
        }
    }

    /// How this run talks to its user: the interactive screen when stdin and stdout are a terminal
    /// (never with --json), colours as --color and NO_COLOR say.
    func console(name: String, trust: KnownPeersBook?, me: NodeID) -> (Console, StandardInput) {
        let onTerminal = isatty(STDOUT_FILENO) == 1
        let colors = switch color {
        case .always: true
        case .never: false
        case .auto: onTerminal && (Environment().string("NO_COLOR") ?? "").isEmpty && Environment().string("TERM") != "dumb"
        }
        let look = ConsoleLook(colors: colors, bell: onTerminal && !noBell)
        let interactive = !json && RawTerminal.isInteractive
        let console = Console(json: json, look: look, interactive: interactive ? (name, RawTerminal.columns(), RawTerminal.rows()) : nil, trust: trust, me: me)
        let input = StandardInput(screen: console.screen, whenOutputIsGone: {
            console.diagnostic("levchat-peer: nothing reads this run's output any more (standard output was closed), so it leaves the room")
        })
        return (console, input)
    }

    /// Runs a session and turns its outcome into the exit code, with the terminal put back before
    /// the last words are printed.
    func run(_ context: OutcomeReport.Context, name: String,
             _ session: (Console, StandardInput, IdentityStore) async -> PeerOutcome) async -> Int32 {
        let (store, notes) = identity()
        let (console, input) = self.console(name: name, trust: store.knownPeers, me: store.identity.node)
        Self.bootstrapLogging(console)
        raiseFileLimit(console)
        for note in notes { console.diagnostic("levchat-peer: \(note)") }
        for failures in [store.knownPeers?.saveFailures, store.offeredFiles?.saveFailures] {
            failures?.listen { console.diagnostic("levchat-peer: \($0)") }
        }
        let outcome = await session(console, input, store)
        store.knownPeers?.flush()
        store.offeredFiles?.flush()
        console.finish()
        input.restoreTerminal()
        let code = OutcomeReport.report(outcome, console: console, context: context)
        console.finish()
        return code
    }

    func validatedName() throws -> String {
        guard let name else {
            let login = CommonOptions.loginName()
            do {
                return try NameRule.fromLogin(login)
            } catch {
                // Escaped: a login name is not ours to trust with the terminal.
                throw ValidationError("your login name '\(ScreenText(escaping: login).rendered)' cannot be used as a room name (\(error)); pass --name")
            }
        }
        do {
            return try NameRule.validate(name)
        } catch {
            throw ValidationError("invalid --name: \(error)")
        }
    }

    /// The settings, with the tuning knobs read from the environment (Docs/CLI.md lists them).
    func settings(port: Int) throws -> PeerSettings {
        guard Self.isAddress(bind) else {
            throw ValidationError("--bind takes an IP address of this machine (like 192.168.1.20, fe80::1%eth0, or :: for all of them), not '\(bind)'")
        }
        var settings = PeerSettings(name: try validatedName(), bindHost: bind, port: port)
        settings.nameIsChosen = name != nil
        settings.network = TCPNetwork(source: bind)
        if let downloads, let problem = DownloadsOption.problem(downloads) { throw ValidationError(problem) }
        settings.downloads = downloads
        let env = Environment()
        if let ms = try env.integer("LEVCHAT_HEARTBEAT_MS", in: 10...60_000) { settings.timings.heartbeat = .milliseconds(ms) }
        if let ms = try env.integer("LEVCHAT_DEAD_AFTER_MS", in: 20...600_000) { settings.timings.deadAfter = .milliseconds(ms) }
        if let ms = try env.integer("LEVCHAT_HANDSHAKE_TIMEOUT_MS", in: 10...600_000) { settings.timings.handshakeTimeout = .milliseconds(ms) }
        if let ms = try env.integer("LEVCHAT_STAGGER_MS", in: 0...60_000) { settings.succession.stagger = .milliseconds(ms) }
        if let ms = try env.integer("LEVCHAT_COLLECT_MS", in: 0...60_000) { settings.succession.collectWindow = .milliseconds(ms) }
        if let bytes = try env.integer("LEVCHAT_MAX_TEXT_BYTES", in: 1...8192) { settings.limits.maxTextBytes = bytes }
        if let bytes = try env.integer("LEVCHAT_SEND_BACKLOG_BYTES", in: 65_536...(1 << 30)) { settings.limits.sendBacklogBytes = bytes }
        if let rate = try env.integer("LEVCHAT_FILE_RATE_BYTES", in: 1024...(1 << 40)) { settings.fileRate = rate }
        if let cipher = env.string("LEVCHAT_FILE_CIPHER") {
            guard let chosen = LinkCipher(rawValue: cipher) else {
                throw ValidationError("LEVCHAT_FILE_CIPHER must be aes-256-gcm or chacha20-poly1305, not '\(cipher)'")
            }
            settings.fileCipher = chosen == .chacha20Poly1305 ? nil : chosen
        }
        if let perMinute = try env.integer("LEVCHAT_GUESS_BUDGET", in: 1...10_000) { settings.guessBudget.perMinute = perMinute }
        if let perMinute = try env.integer("LEVCHAT_JOINS_PER_ADDRESS", in: 1...10_000) { settings.limits.churn.arrivalsPerSourcePerMinute = perMinute }
        if let places = try env.integer("LEVCHAT_PLACES_PER_ADDRESS", in: 1...512) { settings.limits.churn.placesPerSource = places }
        return settings
    }

    /// A host of hundreds of members needs a descriptor each: a diagnostic says so when even the
    /// hard limit is low.
    func raiseFileLimit(_ console: Console) {
        let limit = Transport.raiseDescriptorLimit()
        if limit < 600 {
            console.diagnostic("levchat-peer: only \(limit) file descriptors allowed (ulimit -n); a room of \(RoomLimits().maxMembers) members needs about 600")
        }
    }

    /// Log lines go to stderr through the console (`ConsoleLogHandler`); LEVCHAT_LOG sets the level.
    /// Log lines through `console` (escaped, in order with the rest), at `LEVCHAT_LOG`'s level,
    /// else notice: info lines are for whoever asks for them.
    static func bootstrapLogging(_ console: Console) {
        let level = Environment().string("LEVCHAT_LOG").flatMap(Logger.Level.init(rawValue:)) ?? .notice
        LoggingSystem.bootstrap { label in ConsoleLogHandler(label: label, console: console, level: level) }
    }

    /// An IPv4 or IPv6 address as written (an IPv6 one may name its interface after `%`), not a
    /// host name: a name would be looked up, and could stand for anything.
    static func isAddress(_ text: String) -> Bool {
        var bytes = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &bytes) == 1 { return true }
        let address = text.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = address.first, address.count == 1 || !address[1].isEmpty else { return false }
        return inet_pton(AF_INET6, String(first), &bytes) == 1
    }

    static func loginName() -> String {
        if let user = Environment().string("USER"), !user.isEmpty { return user }
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return String(cString: name) }
        return "guest"
    }
}

enum ColorChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never
}

struct Environment {
    func string(_ key: String) -> String? {
        getenv(key).map { String(cString: $0) }
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = string(key) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw ValidationError("\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound), not '\(text)'")
        }
        return value
    }
}
