/// How many notices of one kind reach the user's screen (Docs/THREAT-MODEL.md, "Flooding the
/// screen"): refusals of broken or hostile connections are worth a line each, but anyone on the
/// LAN can open thousands a second, and each line lands above the chat. In any window, the first
/// `most` are said, the rest held (counted); the first said in the next window tells how many were
/// held before it. Pure: the caller gives the time.
public struct NoticeBudget: Sendable {
    public enum Verdict: Equatable, Sendable {
        /// Show it. `heldBefore`: notices held since the last one shown; `last`: the window's
        /// last one shown (the user is told the next ones are counted).
        case say(heldBefore: Int, last: Bool)
        /// Count it (log it below the shown level).
        case hold
    }

    public let most: Int
    public let window: Duration
    private var windowStart: Duration?
    private var said = 0
    private var held = 0

    public init(most: Int = 5, per window: Duration = .seconds(60)) {
        precondition(most > 0 && window > .zero)
        self.most = most
        self.window = window
    }

    /// A notice at `now` (monotonic): whether it is shown.
    public mutating func admit(at now: Duration) -> Verdict {
        if let start = windowStart, now - start < window {
            guard said < most else {
                held += 1
                return .hold
            }
            said += 1
            return .say(heldBefore: 0, last: said == most)
        }
        let before = held
        windowStart = now
        said = 1
        held = 0
        return .say(heldBefore: before, last: most == 1)
    }
}
