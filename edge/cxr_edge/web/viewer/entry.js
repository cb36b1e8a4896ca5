// cxr-edge's viewer: Cornerstone3D (core and tools) showing one radiograph at full resolution and bit depth, from
// the box's own endpoints (/image/N/full.json and full.raw): no DICOM parsing in the browser, no web workers, no
// WASM codecs. Bundled by build.sh into ../static/vendor/cornerstone3d-viewer.js (the global `cxrViewer`).
import { init, RenderingEngine, Enums, imageLoader, metaData, eventTarget } from '@cornerstonejs/core';
import {
  init as toolsInit, addTool, ToolGroupManager, PanTool, ZoomTool, WindowLevelTool, Enums as ToolEnums,
} from '@cornerstonejs/tools';

const TYPES = { Uint16: Uint16Array, Int16: Int16Array, Float32: Float32Array };
let ready = null;
let engine = null;
const meta = new Map();  // imageId -> the box's description of it

function startOnce() {
  if (!ready) {
    ready = (async () => {
      await init();
      toolsInit();
      [PanTool, ZoomTool, WindowLevelTool].forEach(addTool);
      // what Cornerstone asks of an image that came from no DICOM loader: the box's description answers
      metaData.addProvider((type, imageId) => {
        const m = meta.get(imageId);
        if (!m) return undefined;
        if (type === 'generalSeriesModule') return { modality: 'DX' };
        if (type === 'modalityLutModule') return { rescaleSlope: 1, rescaleIntercept: 0 };
        if (type === 'voiLutModule') {
          const [center, width] = m.windows[0] || [(m.p1 + m.p99) / 2, Math.max(1, m.p99 - m.p1)];
          return { windowCenter: [center], windowWidth: [width] };
        }
        return undefined;
      }, 10000);
      engine = new RenderingEngine('cxr-edge');
    })();
  }
  return ready;
}

// Shows `buffer` (the raw values) described by `m` in `element`; returns the viewer's controls.
export async function open(element, name, m, buffer) {
  await startOnce();
  const imageId = `cxredge:${name}`;
  meta.set(imageId, m);
  const pixels = new TYPES[m.type](buffer);
  imageLoader.createAndCacheLocalImage(imageId, { scalarData: pixels, dimensions: [m.columns, m.rows], spacing: [1, 1] });
  const viewportId = `viewport-${name}`;
  engine.enableElement({ viewportId, type: Enums.ViewportType.STACK, element });
  const viewport = engine.getViewport(viewportId);
  await viewport.setStack([imageId]);
  const group = ToolGroupManager.createToolGroup(`tools-${name}`);
  [PanTool, ZoomTool, WindowLevelTool].forEach((tool) => group.addTool(tool.toolName));
  group.addViewport(viewportId, engine.id);
  const { MouseBindings } = ToolEnums;
  group.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }, { numTouchPoints: 2 }] });
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary },
                                                      { mouseButton: MouseBindings.Wheel }] });

  const controls = {
    window(center, width) { viewport.setProperties({ voiRange: { lower: center - width / 2, upper: center + width / 2 } }); viewport.render(); },
    invert(on) { viewport.setProperties({ invert: on }); viewport.render(); },
    zoom(factor) { const camera = viewport.getCamera(); viewport.setCamera({ parallelScale: camera.parallelScale / factor }); viewport.render(); },
    pan(dx, dy) {
      const camera = viewport.getCamera();
      const [fx, fy, fz] = camera.focalPoint; const [px, py, pz] = camera.position;
      const step = camera.parallelScale / 10;
      viewport.setCamera({ focalPoint: [fx - dx * step, fy - dy * step, fz], position: [px - dx * step, py - dy * step, pz] });
      viewport.render();
    },
    reset() { viewport.resetCamera(); viewport.resetProperties(); viewport.render(); },
    // where the image's corners are on the canvas now: the heat layer is laid over exactly that
    bounds() {
      const topLeft = viewport.worldToCanvas(viewport.getImageData().imageData.indexToWorld([0, 0, 0]));
      const bottomRight = viewport.worldToCanvas(viewport.getImageData().imageData.indexToWorld([m.columns, m.rows, 0]));
      return { left: topLeft[0], top: topLeft[1], width: bottomRight[0] - topLeft[0], height: bottomRight[1] - topLeft[1] };
    },
    voi() { const { voiRange, invert } = viewport.getProperties(); return { lower: voiRange.lower, upper: voiRange.upper, invert: !!invert }; },
    onRender(callback) { element.addEventListener(Enums.Events.IMAGE_RENDERED, callback); },
    resize() { engine.resize(true, true); },
  };
  controls.window(...(m.windows[0] || [(m.p1 + m.p99) / 2, Math.max(1, m.p99 - m.p1)]));
  controls.invert(m.invert);
  return controls;
}

export { eventTarget };
