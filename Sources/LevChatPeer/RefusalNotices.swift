import LevChatCore
import LevChatTransport
import Logging
import Synchronization

/// Notices that anyone on the LAN can cause (connections refused or closed for what they sent,
/// an address with too many unfinished handshakes), within a `NoticeBudget`: a few a minute reach
/// the user, the rest go to `hold` (the log's info level, where there is one) and are counted in
/// the next notice said (Docs/THREAT-MODEL.md, "Flooding the screen"). A flood of garbage
/// connections printed a line each above the chat: 2,851 in five seconds.
final class RefusalNotices: Sendable {
    private let budget = Mutex(NoticeBudget())
    private let clock: PeerClock
    private let say: @Sendable (String) -> Void
    private let hold: (@Sendable (String) -> Void)?

    /// `say` shows a notice; `hold` takes the ones held back (nil: they are only counted).
    init(clock: PeerClock, say: @escaping @Sendable (String) -> Void, hold: (@Sendable (String) -> Void)? = nil) {
        self.clock = clock
        self.say = say
        self.hold = hold
    }

    /// Notices at the log's notice level, the held ones at info.
    convenience init(logger: Logger, clock: PeerClock) {
        self.init(clock: clock, say: { logger.notice("\($0)") }, hold: { logger.info("\($0)") })
    }

    func notice(_ text: String) {
        switch budget.withLock({ $0.admit(at: clock.now().monotonic) }) {
        case .say(let heldBefore, let last):
            let before = heldBefore == 0 ? "" : " (and \(heldBefore) more before it, not shown)"
            let where_ = hold == nil ? "" : " (LEVCHAT_LOG=info shows them)"
            let after = last ? "; more within a minute are counted, not shown\(where_)" : ""
            say("\(text)\(before)\(after)")
        case .hold:
            hold?(text)
        }
    }
}
