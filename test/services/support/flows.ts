import { waitFor } from '../../support/wait';
import { API_KEY } from '../../support/harness';

export { waitFor };
/** Shared bits of the services specs. */

export { API_KEY };
