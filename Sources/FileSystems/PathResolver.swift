import DiskImage

/// The one path resolution of fwassemble, over any tree whose nodes can be looked up by name:
/// a single filesystem (`FileSystemReader.lookup`) and the assembled namespace
/// (`NamespaceFileSystem`) both resolve through it, so "." and "..", symlinks (absolute ones from
/// the root, relative ones from their directory) and the 40-hop limit mean the same everywhere.
public struct PathResolver<Node> {
    /// The node called `name` in `parent` (whose path is `parentPath`), nil when there is none
    /// or `parent` is not a directory. Names are matched as the tree's own lookup matches them.
    public typealias Child = (_ parent: Node, _ parentPath: [[UInt8]], _ name: [UInt8]) throws -> Node?

    public let root: Node
    public let child: Child
    /// A node's symlink target, nil when it is not a symlink.
    public let symlinkTarget: (Node) throws -> [UInt8]?

    public init(root: Node, child: @escaping Child, symlinkTarget: @escaping (Node) throws -> [UInt8]?) {
        self.root = root
        self.child = child
        self.symlinkTarget = symlinkTarget
    }

    /// Resolves `path` (components; "" and "." ignored, ".." goes up, not above the root):
    /// symlinks in the middle are always followed, the last one when `followLast` is set.
    /// Returns the node and the path it was found at (no symlinks, no "." or ".."), nil when a
    /// component does not exist; throws `.limitExceeded` past 40 symlinks.
    public func resolve(_ path: [[UInt8]], followLast: Bool) throws -> (node: Node, path: [[UInt8]])? {
        var stack: [(name: [UInt8], node: Node)] = []
        var pending = Array(path.reversed())
        var hops = 0
        while let component = pending.popLast() {
            if component.isEmpty || component == [0x2E] { continue }
            if component == [0x2E, 0x2E] {
                _ = stack.popLast()
                continue
            }
            let parentPath = stack.map(\.name)
            guard let node = try child(stack.last?.node ?? root, parentPath, component) else { return nil }
            if !pending.isEmpty || followLast, let target = try symlinkTarget(node) {
                hops += 1
                guard hops <= PathComponents.maximumSymlinkHops else {
                    throw FWError(.limitExceeded, "more than \(PathComponents.maximumSymlinkHops) symlinks while resolving")
                }
                if target.first == 0x2F { stack = [] }
                pending += PathComponents.split(target).reversed()
                continue
            }
            stack.append((component, node))
        }
        return (stack.last?.node ?? root, stack.map(\.name))
    }
}
