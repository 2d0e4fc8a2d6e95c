import Assembly
import DiskImage

/// Which store holds a data-root's images and containers, decided once when the `DataRoot` is
/// made. `rawValue` is the report's `store` (a JSON contract).
public enum StoreKind: String, Sendable, Codable, CaseIterable {
    /// Docker's graph driver: `overlay2/` and `image/overlay2/`.
    case overlay2
    /// Docker 29's containerd image store, or containerd alone (k3s, a system containerd).
    case containerd
    /// Podman's containers/storage.
    case podman
    /// Nothing recognisable: no images, no containers.
    case unknown
}

/// What a store adds to a data-root's report.
struct StoreInventory {
    var images: [ImageInfo] = []
    var containers: [ContainerInfo] = []
    /// containerd's namespaces (nil for the other stores: the key is absent from the report).
    var namespaces: [NamespaceInfo]?
    /// Podman's state database (nil for the other stores: the key is absent from the report).
    var libpodState: LibpodStateInfo?
    var layers = 0
    var whiteouts = 0
    var opaque = 0
}

/// One store's reading of a data-root: its inventory and integrity checks (problems land on the
/// data-root, never thrown), and the layer directories an export merges, top first.
protocol ImageStore {
    func inventory(countMarkers: Bool) -> StoreInventory
    /// The layers of an image of the inventory (`reference` as the caller named it, for messages;
    /// `limits` bound the layer blobs an export decompresses).
    func layers(ofImage image: ImageInfo, reference: String, limits: LayerLimits) throws -> [Layer]
    /// The layers of a container of the inventory.
    func layers(ofContainer container: ContainerInfo) throws -> [Layer]
    /// A container the store knows that the inventory does not list (containerd's own
    /// container records, for containerd alone), by id; nil when there is none.
    func unlistedContainerLayers(_ reference: String) throws -> (id: String, layers: [Layer])?
}

extension ImageStore {
    func unlistedContainerLayers(_ reference: String) throws -> (id: String, layers: [Layer])? { nil }
}

/// A data-root whose store is not recognised: nothing to list or export.
struct UnknownStore: ImageStore {
    let root: DataRoot

    func inventory(countMarkers: Bool) -> StoreInventory { StoreInventory() }

    func layers(ofImage image: ImageInfo, reference: String, limits: LayerLimits) throws -> [Layer] {
        throw FWError(.notFound, "no image \(reference) in the data-root", path: root.path)
    }

    func layers(ofContainer container: ContainerInfo) throws -> [Layer] {
        throw FWError(.notFound, "no container \(container.name) in the data-root", path: root.path)
    }
}

extension DataRoot {
    /// The store serving this data-root (the one place a `StoreKind` picks its code).
    var imageStore: any ImageStore {
        switch store {
        case .overlay2: Overlay2Store(root: self)
        case .containerd: containerdRoot.map { ContainerdImageStore(root: self, containerd: $0) as any ImageStore } ?? UnknownStore(root: self)
        case .podman: PodmanStore(root: self)
        case .unknown: UnknownStore(root: self)
        }
    }
}
