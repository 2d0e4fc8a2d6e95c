import DiskImage
import FileSystems

/// What archiving a walk wrote and what it could not: the one set of counters of `extract`,
/// `assemble` and the Docker exports.
public struct ArchiveSummary: Sendable {
    /// Members written (the root included).
    public var members = 0
    /// Regular files, hardlink members and bytes of file content written.
    public var files = 0
    public var hardlinks = 0
    public var contentBytes: UInt64 = 0
    /// Everything skipped or written with a loss, in walk order: walk problems (unreadable
    /// entries, loops, limits), sockets, entries tar cannot hold, short or unreadable files.
    public var problems: [ArchiveProblem] = []
    /// The walk's own problems (also in `problems`).
    public var walkProblems: [WalkProblem] = []
    /// Entries that could not be written as they are (also in `problems`): invalid entries,
    /// unreadable files written as zeros, unwritable xattr names.
    public var readErrors: [ArchiveProblem] = []
    /// Sockets (tar cannot store them), by path (also in `problems`).
    public var skippedSockets: [String] = []
    /// Device nodes left out on request, by path.
    public var droppedDevices: [String] = []
    /// With `HardlinkMode.copy`: later paths of a hardlink written as full files, and the content
    /// bytes that stored again (the cost of copy mode over link mode).
    public var copiedHardlinks = 0
    public var copiedBytes: UInt64 = 0

    public init() {}
}

/// How the archive writes a file met again at another path (`WalkEntry.hardlinkTarget`).
public enum HardlinkMode: String, Sendable, CaseIterable {
    /// Every later path is a link member ('1') naming the first one (the default).
    case link
    /// Every later path of a hardlink is a full regular file with the content, as fw2tar writes
    /// it, for readers that skip link members (penguin's shims, ratarmountcore). A file met again
    /// through another mount (a bind: the Docker data-root at two places) stays a link member,
    /// so a bind does not store its whole tree twice.
    case copy
}

/// The one archive loop: every entry of a walk as a tar member, in walk order. Hardlinks come
/// from the walk (`hardlinkTarget`): the first path met is written as a file and every later
/// path as a link member ('1') naming it.
public enum Archiver {
    /// Writes `walk` into `tar`; `dropDevices` leaves device nodes out (listed in the summary);
    /// `written` is called after each member with its entry and what was written.
    public static func archive<Walk: EntryWalk>(
        _ walk: inout Walk, into tar: TarWriter, dropDevices: Bool = false, hardlinks: HardlinkMode = .link,
        written: (WalkEntry, TarWriter.MemberKind) -> Void = { _, _ in }
    ) throws -> ArchiveSummary {
        var summary = ArchiveSummary()
        var reportedWalkProblems = 0
        var reportedTarProblems = tar.problems.count
        // Problems in walk order: the writer's (about the previous entry), then the walk's.
        func collect(_ walk: Walk) {
            let fromTar = tar.problems.dropFirst(reportedTarProblems)
            summary.problems += fromTar
            summary.readErrors += fromTar
            reportedTarProblems = tar.problems.count
            for p in walk.problems.dropFirst(reportedWalkProblems) {
                summary.problems.append(ArchiveProblem(path: p.path, message: p.error.message))
                summary.walkProblems.append(p)
            }
            reportedWalkProblems = walk.problems.count
        }

        while let item = walk.next() {
            collect(walk)
            let m = item.metadata
            if m.type == .socket {
                summary.skippedSockets.append(item.displayPath)
                summary.problems.append(ArchiveProblem(path: item.displayPath, message: "socket: not representable in tar; skipped"))
                continue
            }
            if dropDevices, m.type == .characterDevice || m.type == .blockDevice {
                summary.droppedDevices.append(item.displayPath)
                continue
            }
            let entry: TarEntry
            do {
                entry = try TarEntry(path: item.path, metadata: m)
            } catch {
                let problem = ArchiveProblem(path: item.displayPath, message: FWError(error).message)
                summary.problems.append(problem)
                summary.readErrors.append(problem)
                continue
            }
            let copied = hardlinks == .copy && item.hardlinkTarget != nil && !item.metThroughAnotherView
            let kind = try tar.appendMember(entry, inode: m.inode, reader: item.reader,
                                            hardlinkTarget: copied ? nil : item.hardlinkTarget)
            switch kind {
            case .hardlink: summary.hardlinks += 1
            case .file:
                summary.files += 1
                summary.contentBytes += m.size
                if copied {
                    summary.copiedHardlinks += 1
                    summary.copiedBytes += m.size
                }
            case .other: break
            }
            summary.members += 1
            written(item, kind)
        }
        collect(walk)
        return summary
    }

    /// Writes a whole filesystem (or a subtree) in `TreeWalk` order.
    public static func archive(_ reader: any FileSystemReader, into tar: TarWriter) throws -> ArchiveSummary {
        var walk = TreeWalk(reader)
        return try archive(&walk, into: tar)
    }
}
