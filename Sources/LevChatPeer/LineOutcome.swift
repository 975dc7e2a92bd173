/// What a role (`HostService`, `MemberService`) did with one line the user typed.
public enum LineOutcome: Sendable {
    case taken
    /// The user asked to leave.
    case quit
    /// This role no longer holds the room (it was handed on); the line belongs to the next role.
    case notTaken
}
