// The shape a dashboard written by `serin emit grafana` must have, in Grafana's own types from
// `@grafana/schema` (the dashboard model Grafana's frontend and its CUE schema share). The
// integration test `grafana_dashboards_type_check_against_grafana_schema` writes every example
// policy's dashboard as `export const dashboard = <the JSON> satisfies SerinDashboard;` and runs
// `tsc --noEmit --strict`, so a field Grafana does not know (excess property check), a missing
// required field or a value of the wrong type or outside an enum fails the test.

import type {
  Dashboard,
  DataQuery,
  FieldConfig,
  FieldConfigSource,
  Panel,
} from "@grafana/schema";
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen";
import type {
  FieldConfig as StateTimelineFieldConfig,
  Options as StateTimelineOptions,
} from "@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen";

/**
 * A type as its JSON is written: a string enum becomes the union of its values (JSON says
 * `"absolute"`, not `ThresholdsMode.Absolute`). Numeric enums already accept their numbers;
 * everything else maps through unchanged, optional fields stay optional.
 */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Json<U>[]
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

/**
 * A Prometheus query. `@grafana/schema` has no type for the Prometheus data source's query; these
 * are the fields of Grafana's own (`packages/grafana-prometheus/src/dataquery.ts`) on top of
 * the schema's common `DataQuery` (`refId`, `datasource`, `hide`, `queryType`).
 */
export interface PrometheusQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  exemplar?: boolean;
  interval?: string;
  intervalFactor?: number;
  format?: "time_series" | "table" | "heatmap";
  editorMode?: "code" | "builder";
}

/** A panel of plugin `type` with that plugin's options and custom field config. */
type PanelOf<Type extends string, Options, Custom> = Omit<
  Panel,
  "type" | "options" | "fieldConfig" | "targets"
> & {
  type: Type;
  options: Options;
  fieldConfig: Omit<FieldConfigSource, "defaults"> & {
    defaults: Omit<FieldConfig, "custom"> & { custom?: Custom };
  };
  targets: PrometheusQuery[];
};

/** Every panel kind `serin emit grafana` writes. A new kind needs its plugin's types here. */
export type SerinPanel =
  | PanelOf<"timeseries", TimeSeriesOptions, TimeSeriesFieldConfig>
  | PanelOf<"state-timeline", StateTimelineOptions, StateTimelineFieldConfig>;

export type SerinDashboard = Json<
  Omit<Dashboard, "panels"> & { panels: SerinPanel[] }
>;
